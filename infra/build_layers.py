"""Build the two Lambda layers without Docker (`make build`).

    build/layers/deps/python      the [project] dependencies of pyproject.toml (boto3 left out: the
                                  Lambda runtime has it), as wheels for the Lambda runtime and
                                  architecture in infra/config.py
    build/layers/mailsage/python  a copy of layers/mailsage/python/mailsage

Both are compiled to bytecode by an interpreter of the runtime's version (pyenv's, or --python):
Lambda's /opt is read-only, so a layer without .pyc files compiles every module on every cold
start. The .pyc files are hash-based and unchecked, because the CDK CLI zips assets with a fixed
timestamp that timestamp-checked .pyc files would not match.

Usage: python -m infra.build_layers [--out build/layers] [--python PATH] [--architecture arm64]
                                    [--no-venv-constraints]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

if __package__ in (None, ""):  # run as `python infra/build_layers.py`
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from infra.config import (  # noqa: E402
    ARCHITECTURE,
    PACKAGE_SOURCE,
    PROJECT_ROOT,
    PYTHON_RUNTIME_VERSION,
    WHEEL_PLATFORMS,
)

# Provided by the Lambda Python runtime; never bundled.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})
# Installed without their dependencies, which pip would bundle botocore with: beyond the runtime's
# botocore they need only what pyproject.toml pins beside them (aws-xray-sdk: wrapt).
WITHOUT_DEPENDENCIES = frozenset({"aws-xray-sdk"})
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str, source: Path) -> str:
    match = _NAME.match(requirement)
    if not match:
        raise SystemExit(f"cannot parse requirement {requirement!r} in {source}")
    return canonical(match.group(1))


def runtime_requirements(pyproject: Path = PROJECT_ROOT / "pyproject.toml") -> list[str]:
    """The pinned `[project] dependencies`, minus what the Lambda runtime provides."""
    requirements: list[str] = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    kept = []
    for requirement in requirements:
        if requirement_name(requirement, pyproject) in RUNTIME_PROVIDED:
            continue
        if "==" not in requirement:
            raise SystemExit(f"layer dependencies must be pinned with '==': {requirement!r} in {pyproject}")
        kept.append(requirement)
    return kept


def runtime_provided_requirements(pyproject: Path = PROJECT_ROOT / "pyproject.toml") -> list[str]:
    """boto3 as pinned in the `aws` extra: what the Lambda runtime provides beside the layers."""
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    return [r for r in extras["aws"] if requirement_name(r, pyproject) in RUNTIME_PROVIDED]


def venv_constraints(path: Path, *, leave_out: frozenset[str] = RUNTIME_PROVIDED) -> Path | None:
    """Pin transitive dependencies to the versions this virtualenv tests with (None outside a venv)."""
    if sys.prefix == sys.base_prefix:
        return None
    pins = sorted(
        {
            f"{canonical(d.metadata['Name'])}=={d.version}"
            for d in metadata.distributions()
            if d.metadata["Name"] and canonical(d.metadata["Name"]) not in {"mailsage", *leave_out}
        }
    )
    path.write_text("\n".join(pins) + "\n")
    return path


def find_python(version: str = PYTHON_RUNTIME_VERSION) -> Path:
    """An interpreter of the Lambda runtime's version, to compile the layers with: pyenv's newest
    (as `make test-interpreters` finds it), else `python3.12` on PATH."""
    candidates = sorted(
        Path.home().glob(f".pyenv/versions/{version}.*/bin/python"),
        key=lambda p: [int(part) if part.isdigit() else -1 for part in p.parts[-3].split(".")],
        reverse=True,
    )
    on_path = shutil.which(f"python{version}")
    for python in [*candidates, *([Path(on_path)] if on_path else [])]:
        if python_version(python) == version:
            return python
    raise SystemExit(
        f"no Python {version} interpreter found (pyenv install {version}, or pass --python): "
        f"the layers are compiled to bytecode with the Lambda runtime's version"
    )


def python_version(python: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def compile_bytecode(python: Path, *directories: Path) -> None:
    """`.pyc` beside every module, in `__pycache__`, as `python` would write it itself; unchecked
    hash-based, so a zip's fixed timestamps do not invalidate them and the source is not re-hashed."""
    version = python_version(python)
    if version != PYTHON_RUNTIME_VERSION:
        raise SystemExit(f"{python} is Python {version}, the layers target {PYTHON_RUNTIME_VERSION}")
    command = [str(python), "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", "-j", "0"]
    subprocess.run([*command, *map(str, directories)], check=True)


def pip_install(
    target: Path,
    requirements: list[str],
    *,
    architecture: str,
    constraints: Path | None,
    no_deps: bool = False,
) -> None:
    """Wheels for the Lambda runtime's Python version and `architecture`, whatever runs the build."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # compiled afterwards by the runtime's version, not the build machine's
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_RUNTIME_VERSION,
        "--platform",
        WHEEL_PLATFORMS[architecture],
        "--target",
        str(target),
    ]
    if constraints:
        command += ["--constraint", str(constraints)]
    if no_deps:
        command.append("--no-deps")
    command += requirements
    print("installing:", " ".join(command[3:]), flush=True)
    subprocess.run(command, check=True)
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: not importable, not needed


def build_deps(out: Path, *, architecture: str = ARCHITECTURE, use_venv_constraints: bool) -> Path:
    target = out / "deps" / "python"
    shutil.rmtree(out / "deps", ignore_errors=True)
    target.mkdir(parents=True)
    constraints = venv_constraints(out / "constraints.txt") if use_venv_constraints else None
    requirements = runtime_requirements()
    alone = [r for r in requirements if requirement_name(r, PROJECT_ROOT) in WITHOUT_DEPENDENCIES]
    rest = [r for r in requirements if r not in alone]
    pip_install(target, rest, architecture=architecture, constraints=constraints)
    if alone:
        pip_install(target, alone, architecture=architecture, constraints=constraints, no_deps=True)
    bundled = {canonical(p.name.split("-")[0]) for p in target.glob("*.dist-info")}
    if bundled & RUNTIME_PROVIDED:
        raise SystemExit(
            f"the dependency layer pulled in {sorted(bundled & RUNTIME_PROVIDED)}: keep boto3 out"
        )
    return target


def build_package(out: Path) -> Path:
    root = out / "mailsage" / "python"
    shutil.rmtree(out / "mailsage", ignore_errors=True)
    root.mkdir(parents=True)
    shutil.copytree(
        PACKAGE_SOURCE / "mailsage",
        root / "mailsage",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"),
    )
    return root


def build(
    out: Path, *, python: Path, architecture: str = ARCHITECTURE, use_venv_constraints: bool = True
) -> tuple[Path, Path]:
    """Both layers under `out`, compiled: (deps/python, mailsage/python)."""
    deps = build_deps(out, architecture=architecture, use_venv_constraints=use_venv_constraints)
    package = build_package(out)
    compile_bytecode(python, deps, package)
    return deps, package


def build_runtime_stand_in(out: Path, *, python: Path, architecture: str) -> Path:
    """What the Lambda runtime provides beside the layers (boto3, at this project's pin), compiled
    the same way: for importing the layers outside Lambda (the tests, the cold-start figure)."""
    target = out / "runtime" / "python"
    shutil.rmtree(out / "runtime", ignore_errors=True)
    target.mkdir(parents=True)
    constraints = venv_constraints(out / "runtime" / "constraints.txt", leave_out=frozenset())
    pip_install(target, runtime_provided_requirements(), architecture=architecture, constraints=constraints)
    compile_bytecode(python, target)
    return target


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "build" / "layers")
    parser.add_argument(
        "--python", type=Path, help=f"the Python {PYTHON_RUNTIME_VERSION} that compiles the layers"
    )
    parser.add_argument(
        "--architecture",
        choices=sorted(WHEEL_PLATFORMS),
        default=ARCHITECTURE,
        help="wheels for this architecture (default: the functions'; another one is for local tests)",
    )
    parser.add_argument(
        "--no-venv-constraints",
        action="store_true",
        help="resolve transitive dependencies freshly instead of pinning them to this virtualenv",
    )
    args = parser.parse_args(argv)
    out = args.out.resolve()
    deps, package = build(
        out,
        python=args.python or find_python(),
        architecture=args.architecture,
        use_venv_constraints=not args.no_venv_constraints,
    )
    print(
        f"layers for python{PYTHON_RUNTIME_VERSION}/{args.architecture}, with bytecode: "
        f"{deps} ({size_mb(deps):.1f} MB), {package} ({size_mb(package):.1f} MB)"
    )


if __name__ == "__main__":
    main()

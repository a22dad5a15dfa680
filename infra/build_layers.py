"""Build the two Lambda layers without Docker (`make build`).

    build/layers/deps/python      the [project] dependencies of pyproject.toml (boto3 left out: the
                                  Lambda runtime has it), as wheels for the Lambda runtime and
                                  architecture in infra/config.py
    build/layers/mailsage/python  a copy of layers/mailsage/python/mailsage (no __pycache__)

Usage: python -m infra.build_layers [--out build/layers] [--no-venv-constraints]
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
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements(pyproject: Path = PROJECT_ROOT / "pyproject.toml") -> list[str]:
    """The pinned `[project] dependencies`, minus what the Lambda runtime provides."""
    requirements: list[str] = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    kept = []
    for requirement in requirements:
        match = _NAME.match(requirement)
        if not match:
            raise SystemExit(f"cannot parse requirement {requirement!r} in {pyproject}")
        if canonical(match.group(1)) in RUNTIME_PROVIDED:
            continue
        if "==" not in requirement:
            raise SystemExit(f"layer dependencies must be pinned with '==': {requirement!r} in {pyproject}")
        kept.append(requirement)
    return kept


def venv_constraints(path: Path) -> Path | None:
    """Pin transitive dependencies to the versions this virtualenv tests with (None outside a venv)."""
    if sys.prefix == sys.base_prefix:
        return None
    pins = sorted(
        {
            f"{canonical(d.metadata['Name'])}=={d.version}"
            for d in metadata.distributions()
            if d.metadata["Name"] and canonical(d.metadata["Name"]) not in {"mailsage", *RUNTIME_PROVIDED}
        }
    )
    path.write_text("\n".join(pins) + "\n")
    return path


def build_deps(out: Path, *, use_venv_constraints: bool) -> Path:
    target = out / "deps" / "python"
    shutil.rmtree(out / "deps", ignore_errors=True)
    target.mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # no .pyc for the build machine's Python version
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_RUNTIME_VERSION,
        "--platform",
        WHEEL_PLATFORMS[ARCHITECTURE],
        "--target",
        str(target),
    ]
    constraints = venv_constraints(out / "constraints.txt") if use_venv_constraints else None
    if constraints:
        command += ["--constraint", str(constraints)]
    command += runtime_requirements()
    print("building the dependency layer:", " ".join(command[3:]), flush=True)
    subprocess.run(command, check=True)
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: not importable, not needed
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


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "build" / "layers")
    parser.add_argument(
        "--no-venv-constraints",
        action="store_true",
        help="resolve transitive dependencies freshly instead of pinning them to this virtualenv",
    )
    args = parser.parse_args(argv)
    out = args.out.resolve()
    deps = build_deps(out, use_venv_constraints=not args.no_venv_constraints)
    package = build_package(out)
    print(
        f"layers for python{PYTHON_RUNTIME_VERSION}/{ARCHITECTURE}: "
        f"{deps} ({size_mb(deps):.1f} MB), {package} ({size_mb(package):.1f} MB)"
    )


if __name__ == "__main__":
    main()

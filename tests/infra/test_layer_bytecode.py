"""The layers ship bytecode the Lambda runtime will use: every module has an unchecked-hash `.pyc`
for CPython 3.12, the deployed assets keep them, and each handler imports from the built layers
under 3.12 without compiling any of their modules and without the repository's own package.

The `.pyc` check reads `build/layers` when `make build` has made it (what a deploy uploads), else a
build into a temporary directory. The imports need layers for this machine's architecture (the
deployed ones hold arm64 extension modules), so they use a build of their own, plus boto3 at this
project's pin standing in for the Lambda runtime's. Each build takes a few seconds, offline."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra import build_layers
from infra.config import PACKAGE_SOURCE, PROJECT_ROOT, PYTHON_RUNTIME_VERSION

FUNCTIONS_DIR = PROJECT_ROOT / "functions"
HANDLERS = sorted(p.parent.name for p in FUNCTIONS_DIR.glob("*/handler.py"))
CACHE_TAG = "cpython-" + PYTHON_RUNTIME_VERSION.replace(".", "")
HOST_ARCHITECTURE = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]

# Run by the 3.12 interpreter: one line per module whose .pyc the runtime would not use as is.
CHECK_PYC = """
import importlib.util, json, marshal, sys
from pathlib import Path
problems, modules = [], 0
for root in sys.argv[1:]:
    for source in sorted(Path(root).rglob("*.py")):
        modules += 1
        pyc = Path(importlib.util.cache_from_source(str(source)))
        if not pyc.is_file():
            problems.append(f"{source}: no {pyc.name}")
            continue
        data = pyc.read_bytes()
        flags = int.from_bytes(data[4:8], "little")
        if data[:4] != importlib.util.MAGIC_NUMBER:
            problems.append(f"{pyc}: magic {data[:4]!r}, not this interpreter's")
        elif flags != 0b01:  # bit 0: hash-based; bit 1: check the source (timestamps when 0)
            problems.append(f"{pyc}: flags {flags:#04b}, not unchecked-hash (0b01)")
        elif data[8:16] != importlib.util.source_hash(source.read_bytes()):
            problems.append(f"{pyc}: compiled from another version of {source.name}")
        elif type(marshal.loads(data[16:])).__name__ != "code":
            problems.append(f"{pyc}: no code object")
print(json.dumps({"version": list(sys.version_info[:2]), "modules": modules, "problems": problems}))
"""

# Run by the 3.12 interpreter with -S -E -B (no site-packages, no PYTHON* variables, nothing
# written, as on Lambda's read-only /opt): sys.path is the function's directory, the layers, the
# runtime's boto3 and the standard library, in Lambda's order. Reports every module the import
# compiled from source.
IMPORT_HANDLER = """
import importlib.util, json, sys
from importlib.machinery import SourceFileLoader
handler, *paths = sys.argv[1:]
compiled = []
to_code = SourceFileLoader.source_to_code
def recording(self, data, path, *args, **kwargs):
    compiled.append(str(path))
    return to_code(self, data, path, *args, **kwargs)
SourceFileLoader.source_to_code = recording
sys.path[:] = [str(__import__("pathlib").Path(handler).parent), *paths, *[p for p in sys.path if p]]
spec = importlib.util.spec_from_file_location("handler", handler)
spec.loader.exec_module(importlib.util.module_from_spec(spec))
import mailsage
print(json.dumps({"mailsage": mailsage.__file__, "compiled": compiled, "path": sys.path}))
"""

AWS_ENV = {
    "MAILSAGE_BACKEND": "aws",
    "MAILSAGE_TABLE_NAME": "mailsage-test",
    "MAILSAGE_SEND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/send",
    "MAILSAGE_SEND_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/send-dlq",
    "MAILSAGE_INGEST_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/ingest-dlq",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="module")
def python312() -> Path:
    return build_layers.find_python(PYTHON_RUNTIME_VERSION)


@pytest.fixture(scope="module")
def deployed_layers(python312: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """deps/python and mailsage/python as a deploy would upload them."""
    built = PROJECT_ROOT / "build" / "layers"
    dirs = [built / "deps" / "python", built / "mailsage" / "python"]
    if all(d.is_dir() for d in dirs):
        return dirs
    return list(build_layers.build(tmp_path_factory.mktemp("layers"), python=python312))


@pytest.fixture(scope="module")
def host_layers(python312: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The layers built for this machine, then the runtime's boto3: sys.path after the function."""
    out = tmp_path_factory.mktemp("host-layers")
    deps, package = build_layers.build(out, python=python312, architecture=HOST_ARCHITECTURE)
    runtime = build_layers.build_runtime_stand_in(out, python=python312, architecture=HOST_ARCHITECTURE)
    return [package, deps, runtime]


def run312(python312: Path, code: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    out = subprocess.run(
        [str(python312), "-S", "-E", "-B", "-c", code, *args],
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_every_module_of_both_layers_has_an_unchecked_hash_pyc_for_3_12(
    python312: Path, deployed_layers: list[Path], tmp_path: Path
) -> None:
    # Given the layers as built for the deploy
    # When the target interpreter reads every .pyc header beside its source
    report = run312(python312, CHECK_PYC, *map(str, deployed_layers), cwd=tmp_path)
    # Then every one is its own magic number, unchecked-hash, of this very source
    assert report["version"] == [int(n) for n in PYTHON_RUNTIME_VERSION.split(".")]
    assert report["problems"] == [], "run `make build` again?"
    package_modules = sum(1 for _ in (PACKAGE_SOURCE / "mailsage").rglob("*.py"))
    assert report["modules"] > package_modules + 100  # both layers were walked, deps included


@pytest.mark.parametrize("function", HANDLERS)
def test_each_handler_imports_from_the_layers_bytecode_under_3_12(
    function: str, python312: Path, host_layers: list[Path], tmp_path: Path
) -> None:
    # Given only the function's directory, the built layers and the runtime's boto3 on sys.path
    env = {**AWS_ENV, "MAILSAGE_DATA_DIR": str(tmp_path), "POWERTOOLS_SERVICE_NAME": f"mailsage-{function}"}
    handler = FUNCTIONS_DIR / function / "handler.py"
    # When the handler module is loaded as Lambda loads it
    report = run312(python312, IMPORT_HANDLER, str(handler), *map(str, host_layers), cwd=tmp_path, env=env)
    # Then the package came from the layer, and nothing but the handler file was compiled
    assert Path(report["mailsage"]).is_relative_to(host_layers[0])
    assert [p for p in report["path"] if Path(p).is_relative_to(PROJECT_ROOT)] == [str(handler.parent)]
    assert report["compiled"] == [str(handler)]


def test_five_handlers_are_checked() -> None:
    assert HANDLERS == ["api", "events", "ingest", "sender", "webhooks"]


def test_the_layer_assets_keep_their_bytecode(build_app: Any, tmp_path: Path) -> None:
    # Given layer directories holding a module and its .pyc
    for part in ("deps", "mailsage"):
        cache = tmp_path / "layers" / part / "python" / f"{part}_module" / "__pycache__"
        cache.mkdir(parents=True)
        (cache.parent / "__init__.py").write_text("")
        (cache / f"__init__.{CACHE_TAG}.pyc").write_bytes(b"\0" * 16)
    # When the app is synthesized from them
    app, _ = build_app({"layers_dir": str(tmp_path / "layers")})
    # Then the staged layer assets still hold the .pyc files
    staged = {p.parent.parent.name for p in Path(app.outdir).rglob("*.pyc")}
    assert staged == {"deps_module", "mailsage_module"}

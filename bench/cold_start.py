"""Figure 4 — cold start: the import (load) time of each handler module, `functions/<name>/handler.py`,
as the Lambda runtime loads it from the built layers, as a ratio to a bare `import boto3` timed
the same way in the same run.

The layers are built as `make build` builds them (infra/build_layers.py: wheels for Python 3.12,
compiled to unchecked-hash bytecode by pyenv's 3.12) but for this machine's architecture, into a
temporary directory; boto3 at the project's pin, compiled the same way, stands in for the
runtime's. Each sample is a new 3.12 process without site-packages that writes nothing (-S -E -B:
Lambda's /opt is read-only), whose sys.path is the function's directory, the layers, boto3 and
the standard library, in Lambda's order. It times only `exec_module` of the handler file (module
body included: settings validated, app and processors built), not interpreter start-up. The
environment is the deployed one (MAILSAGE_BACKEND=aws with resource names; nothing is contacted:
boto3 clients are created on first use). Samples of all modules are interleaved, 10 rounds; the
figure is median(handler) / median(boto3). Target: at most 2x for api and sender.

The same from a copy of the layers without their bytecode (what they shipped before) is a detail."""

from __future__ import annotations

import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.common import ROOT, Figure, clean_env, log, median
from infra import build_layers

ROUNDS = 10
SOURCE_ROUNDS = 3  # the layers without bytecode, a detail
HANDLERS = ("api", "sender", "ingest", "events", "webhooks")
HOST_ARCHITECTURE = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]

# argv: the handler file (or "" for boto3 alone), then the sys.path entries before the stdlib.
LOAD = """
import importlib.util, sys, time
handler, *paths = sys.argv[1:]
sys.path[:] = [*paths, *[p for p in sys.path if p]]
t = time.perf_counter()
if handler:
    spec = importlib.util.spec_from_file_location("handler", handler)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
else:
    import boto3
print(time.perf_counter() - t)
"""

AWS_ENV = {
    "MAILSAGE_BACKEND": "aws",
    "MAILSAGE_TABLE_NAME": "mailsage-bench",
    "MAILSAGE_SEND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/send",
    "MAILSAGE_SEND_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/send-dlq",
    "MAILSAGE_INGEST_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/ingest-dlq",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "mailsage",
    # As Lambda sets it. Powertools' Tracer is on only there, and the X-Ray SDK samples locally
    # there; elsewhere it builds an X-Ray client at import, which Lambda never pays.
    "LAMBDA_TASK_ROOT": "/var/task",
}


class Layers:
    """The built layers and the runtime's boto3 for one 3.12 interpreter: what a sample imports."""

    def __init__(self, python: Path, layers: list[Path], runtime: Path, cwd: Path) -> None:
        self.python, self.layers, self.runtime, self.cwd = python, layers, runtime, cwd

    def sample(self, handler: str, env: dict[str, str]) -> float:
        paths = [str(Path(handler).parent)] if handler else []
        paths += [*map(str, self.layers), str(self.runtime)]
        out = subprocess.run(
            [str(self.python), "-S", "-E", "-B", "-c", LOAD, handler, *paths],
            env=env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            check=True,
        )
        return float(out.stdout.strip().splitlines()[-1])

    def without_bytecode(self, into: Path) -> Layers:
        copies = []
        for layer in self.layers:
            copy = into / layer.parent.name / "python"
            shutil.copytree(layer, copy, ignore=shutil.ignore_patterns("__pycache__"))
            copies.append(copy)
        return Layers(self.python, copies, self.runtime, self.cwd)


def build(tmp: Path) -> Layers:
    python = build_layers.find_python()
    log(f"building the layers for {HOST_ARCHITECTURE} with {python}")
    deps, package = build_layers.build(tmp / "layers", python=python, architecture=HOST_ARCHITECTURE)
    runtime = build_layers.build_runtime_stand_in(
        tmp / "layers", python=python, architecture=HOST_ARCHITECTURE
    )
    return Layers(python, [package, deps], runtime, cwd=tmp)


def measure(layers: Layers, env: dict[str, str], rounds: int) -> dict[str, list[float]]:
    # Samples of all modules interleaved, so a slow moment of the machine touches them all alike.
    times: dict[str, list[float]] = {name: [] for name in ("boto3", *HANDLERS)}
    for _ in range(rounds):
        times["boto3"].append(layers.sample("", env))
        for name in HANDLERS:
            times[name].append(layers.sample(str(ROOT / "functions" / name / "handler.py"), env))
    return times


def run() -> Figure:
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        env = clean_env(MAILSAGE_DATA_DIR=tmp, **AWS_ENV)
        layers = build(Path(tmp))
        measure(layers, env, 1)  # discarded: reads every file once into the page cache
        times = measure(layers, env, ROUNDS)
        source = measure(layers.without_bytecode(Path(tmp) / "source"), env, SOURCE_ROUNDS)
    base = median(times["boto3"])
    ratios = {name: median(times[name]) / base for name in HANDLERS}
    source_ratios = {name: median(source[name]) / median(source["boto3"]) for name in HANDLERS}
    log(
        "cold start: "
        + ", ".join(f"{n} {r:.2f}x" for n, r in ratios.items())
        + f" (boto3 {base * 1e3:.0f} ms); layers without bytecode: "
        + ", ".join(f"{n} {r:.2f}x" for n, r in source_ratios.items())
    )
    worst = max(ratios["api"], ratios["sender"])
    return Figure(
        key="cold_start",
        name="Cold start: handler import / import boto3 (worst of api, sender)",
        value=worst,
        unit="x boto3",
        target=2.0,
        op="<=",
        runs=[
            max(a / b, s / b) for a, s, b in zip(times["api"], times["sender"], times["boto3"], strict=True)
        ],
        details={
            "python": str(layers.python),
            "architecture": HOST_ARCHITECTURE,
            "boto3_ms_median": base * 1e3,
            **{f"{n}_ms_median": median(times[n]) * 1e3 for n in HANDLERS},
            **{f"{n}_ratio": ratios[n] for n in HANDLERS},
            "rounds": ROUNDS,
            # The layers' modules compiled from source on each start, as before they held bytecode.
            **{f"{n}_ms_median_without_bytecode": median(source[n]) * 1e3 for n in HANDLERS},
            **{f"{n}_ratio_without_bytecode": source_ratios[n] for n in HANDLERS},
            "source_rounds": SOURCE_ROUNDS,
        },
        note=", ".join(f"{n} {ratios[n]:.2f}x" for n in HANDLERS),
    )

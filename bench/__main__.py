"""`python -m bench [--only ingest,cost,...]`: run the figures, print one table, write
bench/results.json. A figure that fails to run is reported as ERROR (with the reason), never
skipped silently; the others still run. Exit status 0 whatever the outcome: benchmarks report."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import ROOT, Figure

# Quiet-machine figures first; the long multi-process ones last.
FIGURES = ("cold_start", "ingest", "cost", "throughput", "pacing", "memory", "hostile", "restart")


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    commit = os.popen(f"git -C {ROOT} rev-parse --short HEAD 2>/dev/null").read().strip()
    dirty = bool(os.popen(f"git -C {ROOT} status --porcelain -- layers functions 2>/dev/null").read().strip())
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": commit + (" (layers/functions modified)" if dirty else ""),
        "load_average_at_start": os.getloadavg(),
    }


def run_figure(name: str) -> tuple[list[Figure], str | None]:
    module = __import__(f"bench.{name}", fromlist=["run"])
    try:
        result = module.run()
    except Exception as exc:  # reported, not hidden: the table shows ERROR and why
        traceback.print_exc(file=sys.stderr)
        return [], f"{type(exc).__name__}: {exc}"
    return (result if isinstance(result, list) else [result]), None


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'figure':<58} {'value':>10} {'unit':<12} {'target':>8}  result  note", "-" * 130]
    for r in rows:
        if r.get("error"):
            lines.append(f"{r['name']:<58} {'-':>10} {'':<12} {'':>8}  ERROR   {r['error'][:200]}")
            continue
        value = f"{r['value']:,.3f}" if abs(r["value"]) < 100 else f"{r['value']:,.0f}"
        target = f"{r['op']} {r['target']:g}"
        verdict = "PASS" if r["passed"] else "MISS"
        lines.append(
            f"{r['name'][:58]:<58} {value:>10} {r['unit']:<12} {target:>8}  {verdict:<6}  {r['note']}"
        )
    return "\n".join(lines)


def _merged(output: Path, result: dict[str, Any]) -> dict[str, Any]:
    """A run of some figures replaces their rows in the file and keeps the other figures' rows."""
    try:
        previous = json.loads(output.read_text())
    except (OSError, ValueError):
        return result
    ran = {row["key"] for row in result["figures"]}
    kept = [row for row in previous.get("figures", []) if row.get("key") not in ran]
    timings = {**previous.get("seconds_by_figure", {}), **result["seconds_by_figure"]}
    return {**previous, **result, "seconds_by_figure": timings, "figures": kept + result["figures"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(FIGURES)}")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results.json"))
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(FIGURES)
    unknown = set(chosen) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")

    info = machine()
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    for name in FIGURES:
        if name not in chosen:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        figures, error = run_figure(name)
        timings[name] = round(time.perf_counter() - t, 1)
        rows += [f.as_dict() for f in figures] or [{"key": name, "name": name, "error": error}]
    elapsed = time.perf_counter() - started

    print()
    print(table(rows))
    print(f"\n{len(rows)} rows in {elapsed:.0f}s ({', '.join(f'{k} {v:.0f}s' for k, v in timings.items())})")
    info["load_average_at_end"] = os.getloadavg()
    result = {
        "machine": info,
        "elapsed_seconds": round(elapsed, 1),
        "seconds_by_figure": timings,
        "figures": rows,
    }
    if args.only:
        result = _merged(Path(args.output), result)
    Path(args.output).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Figure 5 — flat memory at scale: a 100,000-recipient campaign (100 batches of 1,000, one
campaign_id) through `mailsage serve` with MAILSAGE_DEFAULT_PROVIDER=sandbox (the whole pipeline,
nothing leaves the process).

- Peak RSS: VmHWM of the server process (/proc/<pid>/status), read after the last job completed.
- Rate: batches are submitted through the API with a window of WINDOW unfinished jobs, so the
  pipeline runs in the same steady state from the first batch to the last (submitting all 100 at
  once would slow the first tenth with API work and flatter the ratio). A tenth is 10 jobs: the
  first tenth runs from the 1st to the 11th job completion, the last from the 90th to the 100th,
  taken from the jobs' own `finished_at` (server clock). Figure: last-tenth rate / first-tenth rate.
Both figures are the median of RUNS runs, each on a fresh data directory and server.
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import Figure, Server, batch_body, log, median, peak_rss_mb, rss_mb

BATCHES = 100
BATCH = 1_000
WINDOW = 3
RUNS = 3
TIMEOUT_S = 240


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def run_once(batches: int = BATCHES) -> dict[str, Any]:
    finished: list[float] = []
    rss_samples: list[tuple[float, float]] = []
    latencies: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp,
        Server(Path(tmp) / "data", MAILSAGE_DEFAULT_PROVIDER="sandbox") as server,
    ):
        start = time.time()
        deadline = time.monotonic() + TIMEOUT_S
        pending: list[str] = []
        submitted = 0
        while len(finished) < batches:
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out: {len(finished)} of {batches} batches done in {TIMEOUT_S}s")
            while submitted < batches and len(pending) < WINDOW:
                body = batch_body(submitted * BATCH, BATCH, campaign="bench-campaign")
                t = time.perf_counter()
                pending.append(server.submit(body))
                latencies.append(time.perf_counter() - t)
                submitted += 1
            time.sleep(0.1)
            for job_id in list(pending):
                job = server.job(job_id)
                if job["state"] == "completed":
                    if job["counts"].get("sent", 0) != BATCH:
                        raise RuntimeError(f"job {job_id} completed with counts {job['counts']}")
                    finished.append(_epoch(job["finished_at"]))
                    pending.remove(job_id)
                elif job["state"] not in ("queued", "running"):
                    raise RuntimeError(f"job {job_id} ended {job['state']}: {job['counts']}")
            if len(finished) % 10 == 0 and (not rss_samples or rss_samples[-1][0] != len(finished)):
                rss_samples.append((len(finished), rss_mb(server.pid)))
        peak = peak_rss_mb(server.pid)
        total_s = time.time() - start
    finished.sort()
    tenth = batches // 10
    first = tenth * BATCH / (finished[tenth] - finished[0])
    last = tenth * BATCH / (finished[-1] - finished[-1 - tenth])
    ratio = last / first
    log(
        f"memory: {batches * BATCH:,} recipients in {total_s:.0f}s, peak RSS {peak:.0f} MB, "
        f"first tenth {first:,.0f}/s, last tenth {last:,.0f}/s"
    )
    return {
        "peak_rss_mb": peak,
        "ratio": ratio,
        "recipients": batches * BATCH,
        "total_seconds": total_s,
        "overall_recipients_per_s": batches * BATCH / total_s,
        "first_tenth_per_s": first,
        "last_tenth_per_s": last,
        "rss_mb_by_batches_done": rss_samples,
        "api_latency_s_first_10": sum(latencies[:tenth]) / tenth,
        "api_latency_s_last_10": sum(latencies[-tenth:]) / tenth,
    }


def run(batches: int = BATCHES, runs: int = RUNS) -> list[Figure]:
    results = [run_once(batches) for _ in range(runs)]
    peaks = [r["peak_rss_mb"] for r in results]
    ratios = [r["ratio"] for r in results]
    mid = sorted(results, key=lambda r: r["ratio"])[len(results) // 2]
    details = {"window": WINDOW, "runs": results}
    return [
        Figure(
            key="memory_peak_rss",
            name=f"Peak RSS of mailsage serve, {batches * BATCH:,} recipients (sandbox)",
            value=median(peaks),
            unit="MB",
            target=250,
            op="<=",
            runs=peaks,
            details=details,
            note=f"{median([r['total_seconds'] for r in results]):.0f}s a run, "
            f"{median([r['overall_recipients_per_s'] for r in results]):,.0f} recipients/s overall",
        ),
        Figure(
            key="memory_rate_ratio",
            name="Rate of the last tenth / first tenth",
            value=median(ratios),
            unit="ratio",
            target=0.8,
            op=">=",
            runs=ratios,
            note=f"{mid['first_tenth_per_s']:,.0f}/s -> {mid['last_tenth_per_s']:,.0f}/s (median run)",
        ),
    ]

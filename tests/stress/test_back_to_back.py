"""Stress: 10 batches of 1,000 submitted back to back while the first ones send, 20 times over,
each time on a fresh `mailsage serve` with its defaults (built-in sink, 4 workers). Every job must
complete, and sending must never pause: no message may change state for more than
PAUSE_LIMIT_SECONDS while work remains.

Long (several minutes): it runs only with MAILSAGE_STRESS=1 (`make stress`)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.faults.serve import ServeProcess

pytestmark = [
    pytest.mark.stress,
    pytest.mark.skipif(
        os.environ.get("MAILSAGE_STRESS") != "1", reason="long: set MAILSAGE_STRESS=1 (make stress)"
    ),
]

ROUNDS = int(os.environ.get("MAILSAGE_STRESS_ROUNDS", "20"))
BATCHES, BATCH = 10, 1000
PAUSE_LIMIT_SECONDS = 10.0
ROUND_TIMEOUT_SECONDS = 600.0
# What the server logs when a loop or a handler invocation fails: each is a cause of a pause.
FAILURE_LINES = ("invocation failed", "iteration failed", "Traceback", "restarting it")


def run_round(server: ServeProcess) -> dict[str, float]:
    """Submit the batches back to back, then watch every job to completion; the longest time in
    which no count of any job changed while work remained."""
    start = time.monotonic()
    jobs = [server.submit(i * BATCH, BATCH).job_id for i in range(BATCHES)]
    submitted = time.monotonic() - start
    last_change, previous, longest = time.monotonic(), None, 0.0
    while True:
        states = [server.job(j) for j in jobs]
        now = time.monotonic()
        counts = tuple(tuple(sorted(s["counts"].items())) for s in states)
        if counts != previous:
            longest = max(longest, now - last_change)
            last_change, previous = now, counts
        if all(s["state"] == "completed" for s in states):
            break
        longest = max(longest, now - last_change)
        assert longest <= PAUSE_LIMIT_SECONDS, (
            f"no progress for {longest:.0f} s: "
            f"{[(s['job_id'], s['state'], s['counts']['queued'], s['counts']['sending']) for s in states]}"
            f"\n{server.tail()}"
        )
        assert now - start < ROUND_TIMEOUT_SECONDS, server.tail()
        time.sleep(0.5)
    sent = sum(s["counts"]["sent"] + s["counts"]["delivered"] for s in states)
    assert sent == BATCHES * BATCH, [s["counts"] for s in states]
    # The sink kept one file per message it took in: one each, none twice
    assert sum(1 for _ in (server.data_dir / "outbox").glob("*.eml")) == BATCHES * BATCH
    return {"submit_s": submitted, "total_s": time.monotonic() - start, "longest_pause_s": longest}


def test_back_to_back_batches_complete_without_a_pause(tmp_path: Path) -> None:
    results = []
    for n in range(ROUNDS):
        # Given a fresh server with its defaults
        data_dir = tmp_path / f"round-{n}"
        server = ServeProcess(data_dir, log_path=tmp_path / f"serve-{n}.log").start()
        try:
            # When 10 batches of 1,000 are submitted back to back while the first ones send
            result = run_round(server)
        finally:
            server.close()
        # Then every job completed without a pause (run_round); a failure the server logged and
        # recovered from is reported, with the log kept beside the data directory
        failures = [line for line in server.log_text().splitlines() if any(f in line for f in FAILURE_LINES)]
        result["failure_lines"] = len(failures)
        results.append(result)
        print(f"round {n + 1}/{ROUNDS}: {result}", flush=True)
        if failures:
            print("\n".join(failures[:20]), flush=True)
        shutil.rmtree(data_dir)  # 10,000 .eml files a round
    worst = max(r["longest_pause_s"] for r in results)
    print(
        f"{ROUNDS} rounds: longest pause {worst:.1f} s, rounds {min(r['total_s'] for r in results):.1f}"
        f"-{max(r['total_s'] for r in results):.1f} s",
        flush=True,
    )

"""Figure — pacing to the SES quota: a 50,000-recipient campaign drained by the stack's 10 senders
against a fake SES that allows 14 messages a second (a new production account's quota).

The simulation of tests/simulation: real SQLite store and queues, the real SubmissionService,
DeliveryService, Pacer and SesTransport, on virtual time (it runs in about a minute, not an hour).
Figures: sent / virtual seconds from the start to the last acceptance, over the allowed rate
(target >= 0.9), and messages failed (target 0)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import Figure, log

RECIPIENTS = 50_000
RATE = 14.0


def run() -> list[Figure]:
    from tests.simulation.harness import Simulation

    with tempfile.TemporaryDirectory(prefix="bench-pacing-") as tmp:
        sim = Simulation(Path(tmp), rate=RATE)
        try:
            start = sim.time()
            job_id = sim.submit("bench", RECIPIENTS)
            started = time.perf_counter()
            sim.run_until(None, real_seconds=600.0)
            real = time.perf_counter() - started
            job = sim.job("bench", job_id)
        finally:
            sim.close()
    accepted = sim.ses.accepted
    ratio = len(accepted) / (accepted[-1].at - start) / RATE if accepted else 0.0
    failed = job.counts.get("failed", 0)
    duplicates = len(accepted) - len({a.message_id for a in accepted})
    log(f"pacing: {len(accepted):,} accepted, ratio {ratio:.3f}, {sim.ses.throttles} throttles, {real:.0f} s")
    details = {
        "recipients": RECIPIENTS,
        "allowed_rate": RATE,
        "accepted": len(accepted),
        "counts": dict(job.counts),
        "duplicates": duplicates,
        "throttles_at_ses": sim.ses.throttles,
        "virtual_seconds": round(accepted[-1].at - start, 1) if accepted else None,
        "real_seconds": round(real, 1),
    }
    note = f"{sim.ses.throttles} throttles, {duplicates} duplicates, {real:.0f} s real"
    return [
        Figure(
            "pacing_ratio",
            "SES 14/s: achieved / allowed rate, 50,000 recipients",
            ratio,
            "ratio",
            0.9,
            ">=",
            details=details,
            note=note,
        ),
        Figure(
            "pacing_failed",
            "SES 14/s: messages failed, 50,000 recipients",
            float(failed),
            "messages",
            0.0,
            "<=",
            details=details,
        ),
    ]

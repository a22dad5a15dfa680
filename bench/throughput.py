"""Figure 2 — end-to-end throughput: a 10,000-recipient job (10 batches of 1,000) through
`mailsage serve` (its defaults: the HTTP API and 4 sender workers in one process, the built-in
aiosmtpd sink in a process of its own, its delivery notifications on) from the first submit to the
last .eml in the outbox, as a ratio to a floor measured in the same run.

The floor: plain `smtplib` pushing 10,000 pre-built messages (the same MIME the sender builds for
the same recipients) over ONE connection into the same sink class (`mailsage.local.sink.SmtpSink`)
running on its own in a separate process, without notifications. So the floor has the sink on one
core and the client on the other, as `mailsage serve` has its sink and its workers.

The end time is exact: the sink names each file after `time.time_ns()` when it received it.
This VM's speed drifts with its host's load, so each end-to-end run is bracketed by two floor runs
and compared with their mean; the figure is the median of RUNS such ratios."""

from __future__ import annotations

import smtplib
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import (
    PYTHON,
    Figure,
    Server,
    batch_body,
    clean_env,
    count_eml,
    free_port,
    log,
    median,
    outbox_times,
    recipient,
)

RECIPIENTS = 10_000
BATCH = 1_000
RUNS = 4

SINK_SCRIPT = """
import sys
from pathlib import Path
from mailsage.local.sink import SmtpSink
sink = SmtpSink(Path(sys.argv[1]), int(sys.argv[2]))
sink.start()
print("ready", flush=True)
sys.stdin.read()
sink.stop()
"""


def prebuilt_messages(n: int) -> list[tuple[str, str, bytes]]:
    """(from, to, MIME bytes) as the sender would build them for recipients 0..n-1."""
    from mailsage.domain.mime import build_message
    from mailsage.domain.rendering import CompiledContent

    body = batch_body(0, 1)
    compiled = CompiledContent(body["subject"], None, body["html"])
    out = []
    for i in range(n):
        r = recipient(i)
        data = build_message(
            compiled.render(r["variables"]),
            from_addr="MailSage <noreply@mailsage.example>",
            to_email=r["email"],
            to_name=r["name"],
            reply_to=None,
            message_id=f"<msg_{i:032x}@mailsage.local>",
            headers={"X-MailSage-Job-ID": "job_bench", "X-MailSage-Message-ID": f"msg_{i:032x}"},
        )
        out.append(("noreply@mailsage.example", r["email"], data))
    return out


def floor_rate(messages: list[tuple[str, str, bytes]]) -> float:
    """Messages/s of smtplib over one connection into a sink in its own process."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        outbox, port = Path(tmp) / "outbox", free_port()
        sink = subprocess.Popen(
            [PYTHON, "-c", SINK_SCRIPT, str(outbox), str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        try:
            assert sink.stdout is not None
            if sink.stdout.readline().strip() != "ready":
                raise RuntimeError("the floor's sink did not start")
            start = time.perf_counter()
            with smtplib.SMTP("127.0.0.1", port) as smtp:
                for sender, to, data in messages:
                    smtp.sendmail(sender, [to], data)
            elapsed = time.perf_counter() - start
            if count_eml(outbox) != len(messages):
                raise RuntimeError("the floor's sink lost messages")
        finally:
            assert sink.stdin is not None
            sink.stdin.close()
            sink.wait(timeout=30)
    return len(messages) / elapsed


def end_to_end_rate() -> tuple[float, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp, Server(Path(tmp) / "data") as server:
        bodies = [batch_body(i * BATCH, BATCH) for i in range(RECIPIENTS // BATCH)]
        start_ns = time.time_ns()
        for body in bodies:
            server.submit(body)
        submitted_s = (time.time_ns() - start_ns) / 1e9
        deadline = time.monotonic() + 600
        while count_eml(server.outbox) < RECIPIENTS:
            if time.monotonic() > deadline or server.proc.poll() is not None:  # type: ignore[union-attr]
                raise RuntimeError(f"only {count_eml(server.outbox)} of {RECIPIENTS} messages arrived")
            time.sleep(0.2)
        elapsed = (max(outbox_times(server.outbox)) - start_ns) / 1e9
        time.sleep(0.5)
        if count_eml(server.outbox) != RECIPIENTS:
            raise RuntimeError("more messages than recipients arrived (a duplicate send)")
    return RECIPIENTS / elapsed, {"submit_seconds": submitted_s, "total_seconds": elapsed}


def run() -> Figure:
    messages = prebuilt_messages(RECIPIENTS)
    floors, e2es, ratios, submits = [], [], [], []
    floor_after = floor_rate(messages)
    for i in range(RUNS):
        floor_before = floor_after
        e2e, info = end_to_end_rate()
        floor_after = floor_rate(messages)
        floor = (floor_before + floor_after) / 2
        floors.append(floor)
        e2es.append(e2e)
        ratios.append(e2e / floor)
        submits.append(info["submit_seconds"])
        log(f"throughput run {i + 1}: e2e {e2e:,.0f}/s, floor {floor:,.0f}/s, ratio {e2e / floor:.2f}")
    return Figure(
        key="throughput",
        name="End-to-end throughput / smtplib floor",
        value=median(ratios),
        unit="ratio",
        target=0.8,
        op=">=",
        runs=ratios,
        details={
            "e2e_recipients_per_s_median": median(e2es),
            "floor_messages_per_s_median": median(floors),
            "e2e_runs": e2es,
            "floor_runs": floors,
            "submit_seconds_median": median(submits),
            "recipients": RECIPIENTS,
            "message_bytes": len(messages[0][2]),
            "setup": "e2e: mailsage serve with its default workers (API + workers in one process, "
            "the built-in sink in its own); "
            "floor: smtplib, 1 connection, sink (SmtpSink) alone in its own process; "
            "each e2e run compared with the mean of the floor runs just before and after it",
        },
        note=f"{median(e2es):,.0f} vs floor {median(floors):,.0f} msg/s",
    )

"""`python -m bench.profile`: where a sender's time goes (for figure 2's MISS analysis).

4,000 messages are accepted in-process (api handler, SQLite), then the real sender handler drains
the queue in this process into the built-in sink running alone in another process, as the floor's
sink does. Prints CPU per message by phase (time.process_time around each call, no profiler
overhead) and the sink process's own CPU per message. Not part of `python -m bench`."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import PYTHON, batch_body, clean_env, count_eml, free_port
from bench.throughput import SINK_SCRIPT

MESSAGES = 4_000


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_sink(tmp: Path) -> tuple[subprocess.Popen[str], int]:
    """The built-in sink alone in another process, as the floor's sink runs; (process, port)."""
    port = free_port()
    sink = subprocess.Popen(
        [PYTHON, "-c", SINK_SCRIPT, str(tmp / "outbox"), str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    assert sink.stdout is not None and sink.stdin is not None
    sink.stdout.readline()
    return sink, port


def _instrument(spent: collections.defaultdict[str, float]) -> None:
    """Wrap each phase's function so its CPU time adds up under its label in `spent`."""
    import mailsage.adapters.smtp as smtp
    import mailsage.adapters.sqlite.store as store
    import mailsage.domain.composition as composition
    import mailsage.domain.delivery as delivery

    def timed(owner: Any, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[label] += time.process_time() - start

        setattr(owner, name, wrapper)

    timed(composition, "build_message", "build_message (MIME)")
    timed(smtp.SmtpSession, "send", "smtplib sendmail (client side)")
    timed(delivery.CompiledContent, "render", "render (Jinja)")
    timed(delivery.CompiledContent, "of", "compile (Jinja, once per chunk)")
    for name in (
        "finish_message",
        "claim_messages",
        "chunk_messages",
        "get_job",
        "complete_job_if_done",
        "suppressed",
    ):
        if hasattr(store.SqliteStore, name):
            timed(store.SqliteStore, name, f"SQLite {name}")


def _drain() -> tuple[float, float]:
    """Run the real sender handler over the send queue until it is empty: (CPU s, wall s)."""
    from mailsage.local.events import sqs_event
    from mailsage.local.functions import LocalContext, load_handler
    from mailsage.settings import ApiSettings
    from mailsage.wiring import backends

    queue = backends(ApiSettings()).queue
    sender = load_handler("sender")
    cpu, wall = time.process_time(), time.perf_counter()
    while received := queue.receive(max_messages=5):
        sender.lambda_handler(sqs_event(received), LocalContext("mailsage-sender"))
        for r in received:
            queue.ack(r.receipt)
    return time.process_time() - cpu, time.perf_counter() - wall


def _report(n: int, cpu: float, wall: float, sink_cpu: float, spent: dict[str, float]) -> None:
    print(f"{n} messages, {n / wall:,.0f}/s with one sender thread")
    print(f"sender CPU per message: {cpu / n * 1e3:.3f} ms")
    for label, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {label:36s} {seconds / n * 1e3:.3f} ms")
    print(f"  {'other (handler, events, queue)':36s} {(cpu - sum(spent.values())) / n * 1e3:.3f} ms")
    print(f"sink process CPU per message (aiosmtpd + .eml write): {sink_cpu / n * 1e3:.3f} ms")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    sink, port = _start_sink(tmp)
    os.environ["MAILSAGE_SMTP_URL"] = f"smtp://127.0.0.1:{port}"
    from bench.ingest import InProcessApi, accepted

    api = InProcessApi(tmp / "data")
    for i in range(MESSAGES // 1000):
        accepted(api.call(api.event(batch_body(i * 1000, 1000))))

    spent: collections.defaultdict[str, float] = collections.defaultdict(float)
    _instrument(spent)
    sink_cpu = _cpu_seconds(sink.pid)
    cpu, wall = _drain()
    time.sleep(0.5)  # the sink's CPU counters settle after its last write
    sink_cpu = _cpu_seconds(sink.pid) - sink_cpu
    n = count_eml(tmp / "outbox")
    assert sink.stdin is not None
    sink.stdin.close()
    sink.wait()
    shutil.rmtree(tmp, ignore_errors=True)
    _report(n, cpu, wall, sink_cpu, spent)


if __name__ == "__main__":
    main()

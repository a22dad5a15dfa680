"""The built-in sink in a process of its own. In the server's process it shared one GIL with the
API and the workers and was the bottleneck of sending; on its own it gets a core. Its delivery
notifications reach the events queue (the same SQLite file, or SQS) through a spool on disk
(local.notification_spool).

The server drives it through its stdin: a "stop" line, or the end of the stream (the server is gone,
however it ended), stops it. SIGTERM, which `kill -TERM -<pgid>` also delivers to it, leaves it
serving for SIGTERM_GRACE_SECONDS or until the server says stop, whichever comes first, so the
server's workers can finish the message in hand; SIGINT (Ctrl-C reaches the whole group) is the
server's to handle.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mailsage

log = logging.getLogger("mailsage.local")

SIGTERM_GRACE_SECONDS = 20.0  # longer than the server takes to stop (local.runtime.STOP_SECONDS)
READY_TIMEOUT_SECONDS = 30.0


class SinkProcess:
    def __init__(self, outbox: Path, spool: Path, port: int, host: str, notification_delay: float) -> None:
        self.config = {
            "outbox": str(outbox),
            "spool": str(spool),
            "port": port,
            "host": host,
            "delay": notification_delay,
        }
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        env = dict(os.environ)
        # The child imports this very package, wherever this process imported it from.
        package_root = str(Path(mailsage.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        process = subprocess.Popen(
            [sys.executable, "-m", "mailsage.local.sink_process", json.dumps(self.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT_SECONDS)
        line = process.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            process.kill()
            process.wait(5)
            raise RuntimeError(f"the built-in SMTP sink did not start (exit code {process.returncode})")
        self._process = process

    def stop(self, timeout: float) -> None:
        """Tell it to stop (it stops taking mail and queues its notifications), wait at most
        `timeout`, then kill it: what it had not queued stays in the spool. Reaped either way, so
        no defunct child is left, also when it had ended already (SIGTERM to the group, a crash)."""
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None and process.stdout is not None
        with contextlib.suppress(OSError):  # gone already: a broken pipe
            process.stdin.write(b"stop\n")
            process.stdin.flush()
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning(
                "the sink did not stop within %.0f s; killed (its notifications stay spooled)", timeout
            )
            process.kill()
            process.wait(5)
        process.stdout.close()


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    logging.basicConfig(level=os.environ.get("MAILSAGE_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    terminated: list[float] = []
    # The handler only records the time: it runs between two bytecodes of the main thread, which
    # may hold a lock that setting an Event would need.
    signal.signal(signal.SIGTERM, lambda *_: terminated.append(time.monotonic()))
    stop = threading.Event()

    def watch_server() -> None:
        for line in sys.stdin.buffer:
            if line.strip() == b"stop":
                break
        stop.set()

    threading.Thread(target=watch_server, name="sink-server-watch", daemon=True).start()

    from mailsage.local.notification_spool import NotificationSpool
    from mailsage.local.runtime import _events_queue
    from mailsage.local.sink import SmtpSink
    from mailsage.settings import CommonSettings

    events = _events_queue(CommonSettings())  # the environment is the server's
    spool = None
    stopping = threading.Event()
    mover = None
    if events is not None:
        spool = NotificationSpool(Path(config["spool"]), events, config["delay"])
        mover = threading.Thread(target=spool.run, args=(stopping,), name="sink-notifications", daemon=True)
        mover.start()
    sink = SmtpSink(Path(config["outbox"]), config["port"], config["host"], accepted=spool)
    sink.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    os.dup2(2, 1)  # nobody reads our stdout from now on: anything printed would fill the pipe
    while not stop.wait(0.2):
        if terminated and time.monotonic() - terminated[0] >= SIGTERM_GRACE_SECONDS:
            break
    sink.stop()
    stopping.set()
    if spool is not None and mover is not None:
        mover.join(5)
        spool.flush()  # what fails stays in the spool for the next start
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Start `mailsage serve` as its own process, as a user would, and talk to it over HTTP."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import free_port, read_eml, wait_until


def out(job: dict[str, Any]) -> int:
    """Messages that left: `sent`, or already `delivered` (the sink reports each delivery)."""
    return int(job["counts"]["sent"] + job["counts"]["delivered"])


class LocalServer:
    def __init__(self, data_dir: Path, env: dict[str, str], workers: int = 2) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.env = env
        self.port = free_port()
        self.smtp_port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.banner = ""
        self.output_tail: collections.deque[str] = collections.deque(maxlen=200)
        self.key = env.get("MAILSAGE_DEV_API_KEY", "")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalServer:
        cmd = [sys.executable, "-m", "mailsage.cli", "serve", "--data-dir", str(self.data_dir)]
        cmd += ["--port", str(self.port), "--smtp-port", str(self.smtp_port), "--workers", str(self.workers)]
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("mailsage serve exited:\n" + "".join(lines))
            lines.append(line)
            if line.strip().startswith("API key:"):
                self.key = line.split(":", 1)[1].strip()
            if line.strip().startswith("mail goes to"):
                break
        self.banner = "".join(lines)
        # Keep reading the server's output: a full pipe would block its logging, and the server.
        self._drain = threading.Thread(target=self._read_output, daemon=True)
        self._drain.start()
        return self

    def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output_tail.append(line)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(
            method, self.url + path, json=body, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )

    def job(self, job_id: str) -> dict[str, Any]:
        reply = self.call("GET", f"/api/v1/emails/jobs/{job_id}")
        assert reply.status_code == 200, reply.text
        return reply.json()

    def wait_for(self, job_id: str, states: set[str], timeout: float = 120) -> dict[str, Any]:
        seen: list[dict[str, Any]] = []

        def reached() -> bool:
            seen.append(self.job(job_id))
            return seen[-1]["state"] in states

        if wait_until(reached, timeout):
            return seen[-1]
        raise AssertionError(
            f"job {job_id} did not reach {states}: {seen[-1]}\nserver output:\n" + "".join(self.output_tail)
        )

    def wait_settled(self, job_id: str) -> dict[str, Any]:
        """Wait until nothing is in flight and the sink stopped growing."""
        previous = None
        while True:
            job = self.job(job_id)
            now = (job["counts"]["sending"], out(job), len(self.outbox()))
            if job["counts"]["sending"] == 0 and now == previous:
                return job
            previous = now
            time.sleep(0.5)

    def outbox(self) -> list[Path]:
        return sorted((self.data_dir / "outbox").glob("*.eml"))

    def received(self) -> list[Any]:
        return [read_eml(p) for p in self.outbox()]


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSAGE_")}
    env["MAILSAGE_DEV_API_KEY"] = "e2e-" + uuid.uuid4().hex
    env["MAILSAGE_DEV_ACCOUNT_ID"] = str(uuid.uuid4())
    # These tests load one account far past the per-account request limit (20/s by default); the
    # limit's own tests are tests/integration/test_rate_limits.py.
    env["MAILSAGE_ACCOUNT_RATE_LIMIT"] = env["MAILSAGE_ACCOUNT_RATE_BURST"] = "100000"
    return env


@pytest.fixture
def server(tmp_path: Path, server_env: dict[str, str]) -> Iterator[LocalServer]:
    srv = LocalServer(tmp_path / "data", server_env).start()
    yield srv
    srv.stop()

"""`mailsage serve` as its own process (its own process group, as a service manager starts it),
spoken to over HTTP, with its output kept in a log file that survives restarts."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.conftest import free_port

SUBJECT = "Fault {{ n }}"
TEXT = "Hello {{ n }}, this is message {{ n }} of a fault-injection run."


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without its MAILSAGE_* and AWS_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILSAGE_", "AWS_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


class ServeProcess:
    """One data directory served by `mailsage serve`; `start` again after a stop or a kill restarts
    it on the same directory, ports, account and key."""

    def __init__(self, data_dir: Path, log_path: Path | None = None, workers: int = 4, **env: str) -> None:
        self.data_dir = data_dir
        self.log_path = log_path or data_dir / "serve.log"
        self.workers = workers
        self.port, self.smtp_port = free_port(), free_port()
        self.account_id = str(uuid.uuid4())
        self.key = "faults-" + uuid.uuid4().hex
        self.env = clean_env(MAILSAGE_DEV_API_KEY=self.key, MAILSAGE_DEV_ACCOUNT_ID=self.account_id, **env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.key}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60) -> ServeProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        cmd = [sys.executable, "-m", "mailsage.cli", "serve", "--data-dir", str(self.data_dir)]
        cmd += ["--port", str(self.port), "--smtp-port", str(self.smtp_port), "--workers", str(self.workers)]
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
            log.flush()
            # A session of its own: a signal to its process group reaches the server and its sink
            # child, never the test runner.
            self.proc = subprocess.Popen(
                cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                if b"mail goes to" in log.read():
                    return self
            if self.proc.poll() is not None:
                raise AssertionError(f"mailsage serve exited at start:\n{self.tail()}")
            time.sleep(0.1)
        raise AssertionError(f"mailsage serve did not start in {timeout} s:\n{self.tail()}")

    def tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def children(self) -> list[int]:
        """The server's child processes (the built-in sink)."""
        found = []
        for task in Path(f"/proc/{self.pid}/task").glob("*/children"):
            found += [int(p) for p in task.read_text().split()]
        return found

    def signal(self, sig: int, group: bool = False) -> None:
        if group:
            os.killpg(self.pid, sig)
        else:
            os.kill(self.pid, sig)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if it is still running after `timeout` seconds."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """kill -9 the server (only the server: its sink child notices and ends by itself)."""
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(timeout=30)

    def close(self) -> None:
        """Stop whatever still runs of this server: SIGTERM, then SIGKILL to its group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            if self.wait_exit(30) is None:
                self.signal(signal.SIGKILL, group=True)
                self.proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # the sink child, if the server left it behind
            os.killpg(self.pid, signal.SIGKILL)
        self.http.close()

    # -- the API ---------------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, timeout: float = 90) -> requests.Response:
        return self.http.request(method, self.url + path, json=body, timeout=timeout)

    def submit(self, first: int, count: int, domain: str = "example.com") -> Accepted:
        """A v1 batch of `count` recipients `r{first}..@domain`. Raises SubmitRefused on any reply
        but 202, and fails on a recipient rejected."""
        reply = self.call("POST", "/api/v1/emails/batch", batch(first, count, domain))
        if reply.status_code != 202:
            raise SubmitRefused(reply)
        body = reply.json()
        assert body["rejected"] == 0, body["errors"][:3]
        return Accepted(body["job_id"], {m["message_id"]: m["email"] for m in body["messages"]})

    def job(self, job_id: str) -> dict[str, Any]:
        reply = self.call("GET", f"/api/v1/emails/jobs/{job_id}")
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    def messages_with_status(self, status: str) -> list[dict[str, Any]]:
        """Every message of the account with a v2 status (e.g. "Failed"), across pages."""
        found: list[dict[str, Any]] = []
        after = None
        while True:
            params = f"status={status}&limit=100" + (f"&after={after}" if after else "")
            reply = self.call("GET", f"/v2/accounts/{self.account_id}/messages?{params}")
            assert reply.status_code == 200, reply.text
            page = reply.json()
            found += page["data"]
            after = page["pagination"].get("next_cursor")
            if not page["pagination"]["has_more"] or not after:
                return found

    def health(self) -> requests.Response:
        return self.call("GET", "/healthz", timeout=10)


@dataclass(frozen=True)
class Accepted:
    job_id: str
    messages: dict[str, str]  # message id (the Message-ID header's local part) -> recipient


class SubmitRefused(Exception):
    def __init__(self, reply: requests.Response) -> None:
        super().__init__(f"{reply.status_code} {reply.text[:300]}")
        self.reply = reply


def batch(first: int, count: int, domain: str = "example.com") -> dict[str, Any]:
    return {
        "subject": SUBJECT,
        "body": TEXT,
        "recipients": [
            {"email": f"r{n}@{domain}", "variables": {"n": str(n)}} for n in range(first, first + count)
        ],
    }

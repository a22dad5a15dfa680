"""Shared by the figures: the workload (template, recipients), the result record, `mailsage serve`
as a subprocess, and small measuring helpers. Standard library only (plus the mailsage package)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

# -- the workload --------------------------------------------------------------------------------
# One HTML template of about 2 KB with five variables per recipient, as the issue asks.
VARIABLES = ("first_name", "company", "plan", "renewal_date", "account_manager")
SUBJECT = "{{ first_name }}, your {{ plan }} plan at {{ company }}"
_PARAGRAPH = (
    '<p style="margin:0 0 12px 0;font-family:Helvetica,Arial,sans-serif;font-size:14px;'
    'line-height:20px;color:#333333">Thank you for being with us. This paragraph is filler that '
    "stands for the body of a real newsletter: offers, product news and links.</p>\n"
)
HTML = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{{ company }}</title></head>\n'
    '<body style="margin:0;padding:0;background:#f4f4f4">\n'
    '<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td>\n'
    '<h1 style="font-family:Helvetica,Arial,sans-serif">Hello {{ first_name }},</h1>\n'
    "<p>Your <b>{{ plan }}</b> plan at {{ company }} renews on {{ renewal_date }}.</p>\n"
    + _PARAGRAPH
    * 6
    + "<p>Questions? {{ account_manager }} is your account manager.</p>\n"
    "</td></tr></table>\n</body></html>\n"
)
TEXT = "Hello {{ first_name }}, your {{ plan }} plan at {{ company }} renews on {{ renewal_date }}."


def recipient(i: int, domain: str = "example.com") -> dict[str, Any]:
    return {
        "email": f"user{i}@{domain}",
        "name": f"User {i}",
        "variables": {
            "first_name": f"User{i}",
            "company": f"Company {i % 97} & Sons",  # an ampersand, so autoescape has work to do
            "plan": ("starter", "team", "business")[i % 3],
            "renewal_date": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "account_manager": f"Manager {i % 13}",
        },
    }


def batch_body(start: int, count: int, *, text: bool = False, campaign: str | None = None) -> dict[str, Any]:
    """A v1 batch request: `count` recipients numbered from `start`, the 2 KB template inline."""
    body: dict[str, Any] = {
        "subject": SUBJECT,
        "html": HTML,
        "recipients": [recipient(i) for i in range(start, start + count)],
    }
    if text:
        body["body"] = TEXT
    if campaign:
        body["campaign_id"] = campaign
    return body


# -- results -------------------------------------------------------------------------------------
@dataclass
class Figure:
    """One line of the table. `value` is compared with `target` by `op` (">=", "<=", "<")."""

    key: str
    name: str
    value: float
    unit: str
    target: float
    op: str
    runs: list[float] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def passed(self) -> bool:
        return {
            ">=": self.value >= self.target,
            "<=": self.value <= self.target,
            "<": self.value < self.target,
        }[self.op]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def repeat(runs: int, measure: Callable[[], float]) -> list[float]:
    return [measure() for _ in range(runs)]


def log(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, in MiB."""
    return _status_kb(pid, "VmHWM") / 1024


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def _status_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any MAILSAGE_* or AWS_* setting of the caller, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILSAGE_", "AWS_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def outbox_times(outbox: Path) -> list[int]:
    """Receive times (ns) of the sink's messages: the sink names each file `{time_ns}-{random}.eml`."""
    return [int(e.name.split("-", 1)[0]) for e in os.scandir(outbox) if e.name.endswith(".eml")]


def count_eml(outbox: Path) -> int:
    return sum(1 for e in os.scandir(outbox) if e.name.endswith(".eml"))


# -- `mailsage serve` as its own process ---------------------------------------------------------
class Server:
    """`python -m mailsage.cli serve` on free ports with a known key, spoken to over HTTP/1.1."""

    def __init__(self, data_dir: Path, workers: int | None = None, **env: str) -> None:
        self.data_dir = data_dir
        self.port, self.smtp_port = free_port(), free_port()
        self.key = "bench-" + uuid.uuid4().hex
        # One account drives each benchmark far past the per-account request limit (20/s by default).
        limits = {"MAILSAGE_ACCOUNT_RATE_LIMIT": "100000", "MAILSAGE_ACCOUNT_RATE_BURST": "100000"}
        self.env = clean_env(
            MAILSAGE_DEV_API_KEY=self.key, MAILSAGE_DEV_ACCOUNT_ID=str(uuid.uuid4()), **{**limits, **env}
        )
        self.workers = workers
        self.proc: subprocess.Popen[str] | None = None
        self._conn: http.client.HTTPConnection | None = None

    @property
    def outbox(self) -> Path:
        return self.data_dir / "outbox"

    def __enter__(self) -> Server:
        cmd = [PYTHON, "-m", "mailsage.cli", "serve", "--data-dir", str(self.data_dir)]
        cmd += ["--port", str(self.port), "--smtp-port", str(self.smtp_port)]
        if self.workers is not None:  # otherwise serve's default, what a user gets
            cmd += ["--workers", str(self.workers)]
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
        )
        assert self.proc.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("mailsage serve exited:\n" + "".join(seen))
            seen.append(line)
            if line.strip().startswith("mail goes to"):
                # Keep reading its output: a full pipe would block the server's logging, and it.
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        raise RuntimeError("mailsage serve did not start:\n" + "".join(seen))

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        for attempt in range(2):  # one reconnect if the kept-alive connection was dropped
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self._conn.request(method, path, body=payload, headers=headers)
                response = self._conn.getresponse()
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
            except (http.client.HTTPException, ConnectionError):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def submit(self, body: dict[str, Any]) -> str:
        status, reply = self.call("POST", "/api/v1/emails/batch", body)
        if status != 202 or reply["rejected"]:
            raise RuntimeError(f"batch not fully accepted: {status} {str(reply)[:300]}")
        return str(reply["job_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        status, reply = self.call("GET", f"/api/v1/emails/jobs/{job_id}")
        if status != 200:
            raise RuntimeError(f"job status: {status} {reply}")
        return dict(reply)

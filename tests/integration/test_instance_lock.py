"""One server per data directory: a second is refused with a clear error; a killed one's lock goes
with it, so the next start can take over what it left in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailsage.domain.models import MessageStatus
from mailsage.local.instance_lock import DataDirInUse, InstanceLock
from mailsage.local.runtime import LocalRuntime, RuntimeConfig
from mailsage.local.sink import SmtpSink
from mailsage.wiring import Backends
from tests.conftest import ApiClient, free_port, read_eml

HOLD = """
import sys, time
from pathlib import Path
from mailsage.local.instance_lock import InstanceLock
lock = InstanceLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_server_on_the_same_data_dir_is_refused_until_the_first_dies(tmp_path: Path) -> None:
    # Given another process holding the data directory
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"

        # When this one tries to take it, then it is refused, naming the holder
        with pytest.raises(DataDirInUse, match=f"pid {holder.pid}"):
            InstanceLock(tmp_path).acquire()

        # And once the holder is killed outright, the lock is free
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        lock = InstanceLock(tmp_path)
        lock.acquire()
        assert (tmp_path / "serve.lock").read_text() == str(os.getpid())
        assert (tmp_path / "serve.lock").stat().st_mode & 0o777 == 0o600
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)


def test_released_lock_can_be_taken_again_in_the_same_process(tmp_path: Path) -> None:
    first = InstanceLock(tmp_path)
    first.acquire()
    with pytest.raises(DataDirInUse):
        InstanceLock(tmp_path).acquire()  # flock locks are per open file, so this is refused too
    first.release()
    second = InstanceLock(tmp_path)
    second.acquire()
    second.release()


def test_at_start_the_messages_a_dead_server_held_go_out_at_once_and_a_second_server_is_refused(
    api: ApiClient, smtp_sink: SmtpSink, stores: Backends, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a job whose first message a killed server held (claimed with the 300 s lease) and a
    # chunk record it had received and not acknowledged
    job = api.post(
        "/api/v1/emails/batch",
        {
            "subject": "Hi",
            "body": "Hello",
            "recipients": [{"email": f"r{i}@example.com"} for i in range(3)],
        },
    ).body
    first = stores.store.chunk_messages(job["job_id"], 0)[0]
    assert stores.store.claim_messages(job["job_id"], [first.id], lease_seconds=300.0) == [first.id]
    assert len(stores.queue.receive(max_messages=10)) == 1

    # When a server starts on the data directory
    config = RuntimeConfig(data_dir, port=free_port(), smtp_port=free_port(), workers=1, sink=False)
    monkeypatch.setenv("MAILSAGE_PUBLIC_URL", f"http://127.0.0.1:{config.port}")  # restored afterwards
    runtime = LocalRuntime(config)
    runtime.start()
    try:
        # Then a second server on it is refused, naming this one
        with pytest.raises(DataDirInUse, match=f"pid {os.getpid()}"):
            LocalRuntime(RuntimeConfig(data_dir, port=free_port(), workers=1, sink=False)).start()
        # And every message goes out well before any lease, the held one included, once each
        deadline = time.monotonic() + 20
        while len(smtp_sink.messages()) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(read_eml(p)["To"] for p in smtp_sink.messages()) == [
            f"r{i}@example.com" for i in range(3)
        ]
        held = stores.store.get_message(first.account_id, first.id)
        assert held is not None and held.status == MessageStatus.SENT and held.attempts == 2
    finally:
        assert runtime.stop() == []

"""The data directory's disk fills up while `mailsage serve` sends through its built-in sink (same
disk): the API answers 503 with Retry-After, nothing accepted is failed for it, and once space is
freed every message is sent exactly once."""

from __future__ import annotations

import errno
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest

from tests.faults.accounting import wait_completed, wait_until
from tests.faults.serve import Accepted, ServeProcess, SubmitRefused

pytestmark = pytest.mark.faults

DISK_MB = 64
FULL_SECONDS = 8.0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MB tmpfs of our own (needs root and a kernel that lets us mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0700", "tmpfs", str(mount)],
            capture_output=True,
            text=True,
        )
    except OSError as exc:  # no mount command
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full."""
    filler = disk / f"filler-{uuid.uuid4().hex}"
    block = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as f:
        while True:
            try:
                f.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    for size in (1 << 16, 4096):  # and the last few blocks
        try:
            with filler.open("ab", buffering=0) as f:
                while True:
                    f.write(block[:size])
        except OSError:
            pass
    return filler


def outbox_copies(outbox: Path) -> Counter[str]:
    """Message-ID (local part) -> .eml files the sink kept for it."""
    copies: Counter[str] = Counter()
    for path in outbox.glob("*.eml"):
        headers = BytesHeaderParser().parsebytes(path.read_bytes().split(b"\r\n\r\n", 1)[0])
        copies[str(headers["Message-ID"]).strip("<>").split("@")[0]] += 1
    return copies


def test_a_full_disk_defers_mail_and_the_api_answers_503_then_everything_is_sent(
    serve: Callable[..., ServeProcess], small_disk: Path, tmp_path: Path
) -> None:
    # Given a server whose data directory (database and the built-in sink's outbox) is on a small
    # disk, sending 3,000 messages into its sink
    server = serve(data_dir=small_disk / "data", log_path=tmp_path / "serve.log", to_relay=False)
    jobs = [server.submit(i * 1000, 1000) for i in range(3)]
    outbox = server.data_dir / "outbox"
    wait_until(lambda: len(list(outbox.glob("*.eml"))) >= 300, 60, "300 messages in the sink", server)

    # When the disk fills up while it sends, clients go on submitting until one is refused, and
    # space is freed a few seconds later
    filler = fill(small_disk)
    replies: Counter[int] = Counter()
    retry_after: set[str] = set()
    wait_until(lambda: submit_once(server, jobs, replies, retry_after) != 202, 30, "a refusal", server)
    time.sleep(FULL_SECONDS)
    filler.unlink()

    # Then the API answered 503 with Retry-After while the disk was full, never 500
    assert replies[503] >= 1 and replies[500] == 0, replies
    assert retry_after and all(v.isdigit() for v in retry_after), retry_after
    # and every accepted message is sent exactly once, none failed, no half-written file is left
    wait_completed(server, jobs, timeout=120)
    accepted = {mid for j in jobs for mid in j.messages}
    states = [server.job(j.job_id) for j in jobs]
    assert sum(s["counts"]["failed"] for s in states) == 0, [s["counts"] for s in states]
    copies = outbox_copies(outbox)
    assert set(copies) == accepted
    assert [mid for mid, n in copies.items() if n > 1] == []
    assert list(outbox.glob(".*.tmp")) == []


def submit_once(
    server: ServeProcess, jobs: list[Accepted], replies: Counter[int], retry_after: set[str]
) -> int:
    """Submit 100 more recipients; what was accepted joins `jobs`. The reply's status."""
    first = 10_000 + 100 * sum(replies.values())
    try:
        jobs.append(server.submit(first, 100))
        replies[202] += 1
        return 202
    except SubmitRefused as refused:
        replies[refused.reply.status_code] += 1
        if refused.reply.status_code == 503:
            retry_after.add(refused.reply.headers.get("Retry-After", ""))
        return refused.reply.status_code

"""The embedded signing key: made once per data directory, the same for every caller."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mailsage.settings import CommonSettings
from mailsage.wiring import _signing_key


def test_callers_racing_on_a_fresh_data_dir_all_get_one_key(data_dir: Path) -> None:
    settings = CommonSettings()
    start = threading.Barrier(8)
    keys: list[bytes] = []
    errors: list[BaseException] = []

    def make() -> None:
        start.wait()
        try:
            keys.append(_signing_key(settings) or b"")
        except BaseException as e:  # noqa: BLE001 - the race is what is under test
            errors.append(e)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    assert (data_dir / "signing.key").read_bytes().strip() == keys[0]
    assert [p.name for p in data_dir.glob("signing.*.tmp")] == []
    assert (data_dir / "signing.key").stat().st_mode & 0o077 == 0


def test_a_configured_secret_wins(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSAGE_SIGNING_SECRET", "s3cret")
    assert _signing_key(CommonSettings()) == b"s3cret"
    assert not (data_dir / "signing.key").exists()

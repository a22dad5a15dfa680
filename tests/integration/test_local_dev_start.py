"""Starting `mailsage serve` on a developer's machine: a busy port is one line and an immediate exit
(not a child's traceback and a hanging process), credentials stay the same across restarts, and
`mailsage invoke` keeps out of the data directory a running server uses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mailsage.cli import main
from mailsage.domain.auth import AuthService
from mailsage.local.dev_credentials import dev_credentials
from mailsage.settings import CommonSettings, ProviderSettings
from mailsage.wiring import backends
from tests.conftest import EVENTS, ROOT, free_port

START_BOUND_SECONDS = 60  # liveness bound: the refusal comes long before this


@contextmanager
def listening() -> Iterator[int]:
    """A port another program (Mailpit, say) is listening on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield int(other.getsockname()[1])


def serve(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "mailsage" / "python")}
    env.pop("MAILSAGE_SMTP_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "mailsage.cli", "serve", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=START_BOUND_SECONDS,
        env=env,
    )


@pytest.mark.parametrize("flag", ["--port", "--smtp-port"])
def test_a_busy_port_is_one_line_naming_the_flag_and_exit_2(tmp_path: Path, flag: str) -> None:
    other = "--smtp-port" if flag == "--port" else "--port"
    with listening() as busy:
        done = serve(tmp_path / "data", flag, str(busy), other, str(free_port()))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{busy} is in use" in lines[0] and f"{flag} N" in lines[0]
    assert "MailSage is running" not in done.stdout
    assert not (tmp_path / "data" / "outbox").exists()  # the sink never started


def test_the_defaults_are_not_mailpits_ports() -> None:
    from mailsage.local.runtime import RuntimeConfig

    config = RuntimeConfig(data_dir=Path("."))
    assert (config.port, config.smtp_port) == (8026, 1026)
    assert ProviderSettings.model_fields["smtp_url"].default.endswith(":1026")


@pytest.fixture
def auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AuthService:
    monkeypatch.setenv("MAILSAGE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MAILSAGE_DEV_API_KEY", raising=False)
    monkeypatch.delenv("MAILSAGE_DEV_ACCOUNT_ID", raising=False)
    return AuthService(backends(CommonSettings()).store)


def test_the_dev_key_is_the_same_after_a_restart(tmp_path: Path, auth: AuthService) -> None:
    first = dev_credentials(tmp_path, auth)
    restarted = dev_credentials(tmp_path, AuthService(backends(CommonSettings()).store))
    assert restarted == first
    assert auth.authenticate(f"Bearer {first[1]}") == first[0]
    assert (tmp_path / "dev-account.json").stat().st_mode & 0o077 == 0


def test_a_key_from_the_environment_is_used_but_not_written_down(
    tmp_path: Path, auth: AuthService, monkeypatch: pytest.MonkeyPatch
) -> None:
    account, remembered = dev_credentials(tmp_path, auth)
    monkeypatch.setenv("MAILSAGE_DEV_API_KEY", "ms_from_the_environment")
    assert dev_credentials(tmp_path, auth) == (account, "ms_from_the_environment")
    assert "ms_from_the_environment" not in (tmp_path / "dev-account.json").read_text()
    monkeypatch.delenv("MAILSAGE_DEV_API_KEY")
    assert dev_credentials(tmp_path, auth) == (account, remembered)


def test_a_malformed_dev_account_id_is_a_clear_error(
    tmp_path: Path, auth: AuthService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSAGE_DEV_ACCOUNT_ID", "not-a-uuid")
    with pytest.raises(ValueError, match="MAILSAGE_DEV_ACCOUNT_ID is not a UUID"):
        dev_credentials(tmp_path, auth)


def test_invoke_uses_a_scratch_data_directory_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILSAGE_DATA_DIR", raising=False)
    monkeypatch.delenv("MAILSAGE_DEV_API_KEY", raising=False)
    live = tmp_path / ".mailsage"  # where `mailsage serve` keeps its data by default
    assert main(["invoke", "api", str(EVENTS / "api_send.json")]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["statusCode"] == 202
    scratch = Path(err.split("data dir: ")[1].split(" (scratch")[0])
    assert (scratch / "mailsage.db").exists()
    assert not live.exists()

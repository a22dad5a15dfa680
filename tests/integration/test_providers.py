"""Provider selection: per request, per account, the deployment default, and failover on transient
errors. Two real SMTP servers stand for two relays."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailsage.domain.models import Account as AccountPrefs
from mailsage.local.functions import load_handler
from mailsage.local.sink import SmtpSink
from mailsage.wiring import Backends
from tests.conftest import Account, ApiClient, Worker, free_port, read_eml


@pytest.fixture
def backup_sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpSink]:
    sink = SmtpSink(tmp_path / "backup-outbox", free_port())
    sink.start()
    monkeypatch.setenv("MAILSAGE_SMTP_RELAYS", json.dumps({"backup": f"smtp://127.0.0.1:{sink.port}"}))
    yield sink
    sink.stop()


@pytest.fixture
def api(backup_sink: SmtpSink, api_handler: Any, account: Account) -> ApiClient:
    # backup_sink comes first: the handler is loaded after it configured the relay, like a cold start.
    return ApiClient(api_handler, account.key)


def send(api: ApiClient, email: str, **extra: object):  # noqa: ANN201
    return api.post(
        "/api/v1/emails/send", {"recipient": {"email": email}, "subject": "s", "body": "b", **extra}
    )


def to_addresses(sink: SmtpSink) -> list[str]:
    return sorted(read_eml(p)["To"] for p in sink.messages())


def test_a_request_can_name_a_relay(
    api: ApiClient, smtp_sink: SmtpSink, backup_sink: SmtpSink, stores: Backends
) -> None:
    assert send(api, "a@example.com", provider="backup").status == 202
    assert send(api, "b@example.com").status == 202
    Worker(load_handler("sender"), stores).drain()
    assert to_addresses(backup_sink) == ["a@example.com"]
    assert to_addresses(smtp_sink) == ["b@example.com"]


def test_an_unknown_provider_is_a_validation_error(api: ApiClient, stores: Backends) -> None:
    reply = send(api, "a@example.com", provider="nope")
    assert reply.status == 400
    assert reply.error["code"] == "validation_error"
    assert "unknown provider 'nope'" in reply.error["message"]
    assert "backup" in reply.error["message"] and "default" in reply.error["message"]
    assert stores.queue.depth() == 0


def test_an_account_default_provider_applies_when_the_request_names_none(
    api: ApiClient, account: Account, smtp_sink: SmtpSink, backup_sink: SmtpSink, stores: Backends
) -> None:
    stores.store.put_account(AccountPrefs(account.id, default_provider="backup"))
    assert send(api, "a@example.com").status == 202
    Worker(load_handler("sender"), stores).drain()
    assert to_addresses(backup_sink) == ["a@example.com"]
    assert smtp_sink.messages() == []


def test_the_failover_takes_over_when_the_primary_relay_is_down(
    api: ApiClient, backup_sink: SmtpSink, stores: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSAGE_SMTP_URL", f"smtp://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("MAILSAGE_FAILOVER_PROVIDER", "backup")
    reply = api.post(
        "/api/v1/emails/batch",
        {"subject": "s", "body": "b", "recipients": [{"email": f"r{i}@example.com"} for i in range(5)]},
    )
    worker = Worker(load_handler("sender"), stores)
    worker.drain()
    assert worker.invocations == 1  # no retry was needed
    assert to_addresses(backup_sink) == [f"r{i}@example.com" for i in range(5)]
    job = api.get(f"/api/v1/emails/jobs/{reply.body['job_id']}").body
    assert (job["state"], job["counts"]["sent"]) == ("completed", 5)


def test_the_failover_takes_a_message_the_primary_defers(
    api: ApiClient, backup_sink: SmtpSink, stores: Backends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiosmtpd.controller import Controller

    class AlwaysDefers:
        async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: ANN001, ANN201
            return "451 4.7.1 greylisted, try again later"

    port = free_port()
    primary = Controller(AlwaysDefers(), hostname="127.0.0.1", port=port)
    primary.start()
    monkeypatch.setenv("MAILSAGE_SMTP_URL", f"smtp://127.0.0.1:{port}")
    monkeypatch.setenv("MAILSAGE_FAILOVER_PROVIDER", "backup")
    try:
        reply = send(api, "a@example.com")
        worker = Worker(load_handler("sender"), stores)
        worker.drain()
    finally:
        primary.stop()
    assert worker.invocations == 1
    assert to_addresses(backup_sink) == ["a@example.com"]
    assert api.get(f"/api/v1/emails/jobs/{reply.body['job_id']}").body["counts"]["sent"] == 1


def test_an_unconfigured_provider_setting_fails_the_cold_start(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("MAILSAGE_FAILOVER_PROVIDER", "missing")
    with pytest.raises(
        ValidationError, match="MAILSAGE_FAILOVER_PROVIDER='missing' is not a configured provider"
    ):
        load_handler("sender")


def test_the_sandbox_provider_sends_nothing_anywhere(
    api: ApiClient, smtp_sink: SmtpSink, backup_sink: SmtpSink, stores: Backends
) -> None:
    reply = send(api, "a@example.com", provider="sandbox")
    Worker(load_handler("sender"), stores).drain()
    assert smtp_sink.messages() == [] and backup_sink.messages() == []
    job = api.get(f"/api/v1/emails/jobs/{reply.body['job_id']}").body
    assert (job["state"], job["counts"]["sent"]) == ("completed", 1)

"""The Python client (`clients/python`, `mailsage_client`) end to end against `mailsage serve` as a
process: one server for the module, its sink relay paced at 20 messages/s so that a job of 100 is
still running when the test pauses it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import standardwebhooks
from mailsage_client import (
    AsyncMailSage,
    AuthenticationError,
    ConflictError,
    MailSage,
    NotFoundError,
    PermissionDeniedError,
    Recipient,
    ValidationError,
)
from mailsage_client.models import Job

from tests.conftest import read_eml, wait_until
from tests.e2e.conftest import LocalServer
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

SENDER = "noreply@mailsage.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSAGE_")}
    env["MAILSAGE_DEV_API_KEY"] = "e2e-" + uuid.uuid4().hex
    env["MAILSAGE_DEV_ACCOUNT_ID"] = str(uuid.uuid4())
    env["MAILSAGE_ACCOUNT_RATE_LIMIT"] = env["MAILSAGE_ACCOUNT_RATE_BURST"] = "100000"
    srv = LocalServer(tmp_path_factory.mktemp("client") / "data", env)
    # The built-in sink, paced: a batch takes long enough to be paused part-way.
    env["MAILSAGE_SMTP_URL"] = f"smtp://127.0.0.1:{srv.smtp_port}?max_rate=20"
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: LocalServer) -> Iterator[MailSage]:
    with MailSage(server.url, server.key) as c:
        yield c


def account_id(server: LocalServer) -> str:
    return server.env["MAILSAGE_DEV_ACCOUNT_ID"]


def sink_subjects(server: LocalServer) -> list[str]:
    return [str(read_eml(p)["Subject"]) for p in server.outbox()]


def wait_done(client: MailSage, job_id: str, timeout: float = 60) -> Job:
    seen: list[Job] = []

    def done() -> bool:
        seen.append(client.jobs.get(job_id))
        return seen[-1].done

    assert wait_until(done, timeout), f"job {job_id} not done: {seen[-1]}"
    return seen[-1]


def test_a_send_reaches_the_sink(server: LocalServer, client: MailSage) -> None:
    # Given a unique subject
    subject = f"Hello {uuid.uuid4().hex[:8]}"
    # When the client sends
    reply = client.emails.send("ada@example.com", subject=subject, text="Hi Ada", name="Ada")
    # Then the job completes and the sink holds the message
    assert reply.status == "queued"
    job = wait_done(client, reply.job_id)
    assert job.state == "completed" and job.kind == "send" and job.progress.percent == 100.0
    assert wait_until(lambda: subject in sink_subjects(server), 20)


def test_a_batch_is_followed_to_completion(server: LocalServer, client: MailSage) -> None:
    tag = uuid.uuid4().hex[:8]
    recipients = [Recipient(email=f"r{i}@example.com", variables={"n": i}) for i in range(8)]
    reply = client.emails.batch(
        [*recipients, {"email": "not-an-address"}],
        subject=f"{tag} #{{{{ n }}}}",
        text="number {{ n }}",
        campaign_id=f"camp-{tag}",
    )
    assert (reply.accepted, reply.rejected) == (8, 1)
    assert reply.errors[0].code == "invalid_recipient" and reply.errors[0].index == 8
    job = wait_done(client, reply.job_id)
    assert job.state == "completed" and job.total == 8 and job.progress.processed == 8
    assert wait_until(lambda: sum(tag in s for s in sink_subjects(server)) == 8, 20)
    assert f"{tag} #7" in sink_subjects(server)
    campaign = client.campaigns.get(f"camp-{tag}")
    assert campaign.recipients == 8 and campaign.jobs == 1


def test_pause_resume_and_stop(server: LocalServer, client: MailSage) -> None:
    # Given a batch of 100 at 20 messages/s
    reply = client.emails.batch([f"p{i}@example.com" for i in range(100)], subject="paced", text="x")
    # When it is paused, resumed and stopped
    paused = client.jobs.pause(reply.job_id)
    assert paused.state == "paused"
    resumed = client.jobs.resume(reply.job_id)
    assert resumed.state in {"queued", "running"}
    stopped = client.jobs.stop(reply.job_id)
    # Then the stop cancelled what had not gone out, and a stopped job cannot resume
    assert stopped.state == "stopped"
    job = wait_done(client, reply.job_id)
    assert job.counts["cancelled"] > 0
    with pytest.raises(ConflictError) as raised:
        client.jobs.resume(reply.job_id)
    assert raised.value.status == 409 and raised.value.code == "conflict"


def test_templates_round_trip(server: LocalServer, client: MailSage) -> None:
    first = client.templates.create("welcome", "Welcome {{ name }}", text="Hi {{ name }}", html="<p>Hi</p>")
    second = client.templates.create("other", "Other", text="x")
    assert client.templates.get(first.template_id).subject == "Welcome {{ name }}"
    # Pages of one: the iterator follows the cursor through them all
    listed = [t.template_id for t in client.templates.list(limit=1)]
    assert {first.template_id, second.template_id} <= set(listed) and len(listed) == len(set(listed))
    replaced = client.templates.replace(first.template_id, "welcome", "Hey {{ name }}", text="Hey {{ name }}")
    assert replaced.subject == "Hey {{ name }}" and replaced.html is None
    assert client.templates.preview(first.template_id, {"name": "Ada"}).subject == "Hey Ada"
    sent = client.emails.send("t@example.com", template_id=first.template_id, variables={"name": "Tess"})
    wait_done(client, sent.job_id)
    assert wait_until(lambda: "Hey Tess" in sink_subjects(server), 20)
    client.templates.delete(first.template_id)
    with pytest.raises(NotFoundError) as raised:
        client.templates.get(first.template_id)
    assert raised.value.code == "not_found"


def test_a_webhook_test_event_arrives_signed(client: MailSage) -> None:
    with WebhookReceiver() as receiver:
        # Given a v1 webhook (standard signing)
        hook = client.webhooks.create("hook", receiver.url, ["message.delivered"])
        assert hook.secret.startswith("whsec_") and hook.signing == "standard"
        # When a test event is sent
        sent = client.webhooks.test(hook.id)
        # Then it arrives, verifies with the standardwebhooks library, and is logged
        request = receiver.wait_for(1)[0]
        payload = standardwebhooks.Webhook(hook.secret).verify(request.body, request.headers)
        assert payload["test"] is True and payload["type"] == sent.event_type == "message.delivered"
        assert wait_until(lambda: [d.id for d in client.webhooks.deliveries(hook.id)] == [sent.delivery_id])
        # A replay posts the same delivery again
        client.webhooks.replay(hook.id, sent.delivery_id)
        replayed = receiver.wait_for(2)[1]
        assert replayed.headers["webhook-id"] == request.headers["webhook-id"]
        updated = client.webhooks.update(hook.id, events=["message.bounced"], name="renamed")
        assert (updated.name, updated.events) == ("renamed", ["message.bounced"])
        assert hook.id in [w.id for w in client.webhooks.list()]
        client.webhooks.delete(hook.id)
        with pytest.raises(NotFoundError):
            client.webhooks.get(hook.id)


def test_v2_messages_create_list_get_cancel(server: LocalServer, client: MailSage) -> None:
    account = client.account(account_id(server))
    subject = f"v2 {uuid.uuid4().hex[:8]}"
    created = account.messages.create(
        from_={"email": SENDER, "name": "MailSage"},
        recipients=[f"v{i}@example.com" for i in range(5)],
        subject=subject,
        text_content="hello",
    )
    ids = {m.id for m in created.data}
    assert len(ids) == 5 and all(m.status == "queued" for m in created.data)
    # Pages of two: three pages hold the five
    pages = list(account.messages.list(subject=subject, limit=2).pages())
    assert [len(p.items) for p in pages] == [2, 2, 1]
    listed = {f"<{m.id}@mailsage.example>" for p in pages for m in p.items}
    assert listed == ids
    one = next(iter(ids))
    assert wait_until(lambda: account.messages.get(one).status in {"Sent", "Delivered"}, 30)
    # A scheduled message can be cancelled before its first attempt
    later = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    scheduled = account.messages.create(
        from_=SENDER,
        recipients=["later@example.com"],
        subject="later",
        text_content="x",
        schedule={"first_attempt": later},
    )
    assert scheduled.data[0].status == "scheduled"
    cancelled = account.messages.cancel(str(scheduled.data[0].id))
    assert "cancelled" in cancelled.message
    with pytest.raises(ValidationError):  # it is no longer scheduled
        account.messages.cancel(str(scheduled.data[0].id))


def test_v2_suppressions(server: LocalServer, client: MailSage) -> None:
    account = client.account(account_id(server))
    until = datetime.now(UTC) + timedelta(days=30)
    for i in range(3):
        account.suppressions.create(f"s{i}@example.com", expires_at=until, reason="test")
    assert {s.email for s in account.suppressions.list(limit=2)} >= {f"s{i}@example.com" for i in range(3)}
    assert [s.email for s in account.suppressions.list(email="s1@example.com")] == ["s1@example.com"]
    account.suppressions.delete("s1@example.com")
    assert list(account.suppressions.list(email="s1@example.com")) == []
    account.suppressions.delete_all()
    assert list(account.suppressions.list()) == []


def test_v2_webhooks(server: LocalServer, client: MailSage) -> None:
    account = client.account(account_id(server))
    hook = account.webhooks.create("v2 hook", "http://127.0.0.1:9/hook", events=["delivered", "bounced"])
    assert (hook.on_delivered, hook.on_bounced, hook.on_failed) == (True, True, False) and hook.secret
    updated = account.webhooks.update(hook.id, events=["failed"])
    assert (updated.on_delivered, updated.on_failed) == (False, True)
    assert account.webhooks.get(hook.id).name == "v2 hook"
    sent = account.webhooks.test(hook.id)
    assert sent.event_type == "message.failed"
    assert wait_until(lambda: [d.id for d in account.webhooks.deliveries(hook.id)] == [sent.delivery_id])
    assert hook.id in [w.id for w in account.webhooks.list(limit=1)]
    account.webhooks.delete(hook.id)
    with pytest.raises(NotFoundError):
        account.webhooks.get(hook.id)


def test_errors_carry_the_code(server: LocalServer, client: MailSage) -> None:
    assert client.ping() is True
    with MailSage(server.url, "not-a-key") as stranger, pytest.raises(AuthenticationError) as unauthorized:
        stranger.jobs.get("job_x")
    assert (unauthorized.value.status, unauthorized.value.code) == (401, "unauthorized")
    with pytest.raises(NotFoundError) as missing:
        client.jobs.get("job_does_not_exist")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(ValidationError) as invalid:
        client.emails.send("ada@example.com", subject="no content")
    assert invalid.value.status == 400 and invalid.value.code == "validation_error"
    with pytest.raises(PermissionDeniedError) as forbidden:
        list(client.account(str(uuid.uuid4())).suppressions.list())
    assert forbidden.value.status == 403 and forbidden.value.code == "forbidden"


def test_the_same_key_twice_is_one_send(server: LocalServer, client: MailSage) -> None:
    subject = f"once {uuid.uuid4().hex[:8]}"
    key = str(uuid.uuid4())
    first = client.emails.send("once@example.com", subject=subject, text="x", idempotency_key=key)
    again = client.emails.send("once@example.com", subject=subject, text="x", idempotency_key=key)
    assert again.job_id == first.job_id and again.message_id == first.message_id
    wait_done(client, first.job_id)
    with pytest.raises(ValidationError) as mismatch:
        client.emails.send("once@example.com", subject=subject, text="other", idempotency_key=key)
    assert mismatch.value.code == "idempotency_mismatch"
    assert wait_until(lambda: subject in sink_subjects(server), 20)
    assert sink_subjects(server).count(subject) == 1


def test_a_create_whose_reply_was_lost_is_retried_and_sent_once(server: LocalServer) -> None:
    # Given a connection that delivers the first send to the server but loses its reply
    forwarded: list[httpx.Request] = []
    real = httpx.Client()

    def lose_first_reply(request: httpx.Request) -> httpx.Response:
        forwarded.append(request)
        reply = real.send(request)
        reply.read()
        if len(forwarded) == 1:
            raise httpx.ReadError("connection reset after the request was sent")
        return reply

    subject = f"lost reply {uuid.uuid4().hex[:8]}"
    http = httpx.Client(transport=httpx.MockTransport(lose_first_reply))
    with MailSage(server.url, server.key, http_client=http) as flaky:
        # When the client sends
        reply = flaky.emails.send("lost@example.com", subject=subject, text="x")
    real.close()
    # Then it tried twice with one key, the server replayed its first reply, and one message went out
    assert len(forwarded) == 2
    assert forwarded[0].headers["Idempotency-Key"] == forwarded[1].headers["Idempotency-Key"]
    assert json.loads(forwarded[0].content) == json.loads(forwarded[1].content)
    with MailSage(server.url, server.key) as c:
        assert wait_done(c, reply.job_id).total == 1
    assert wait_until(lambda: subject in sink_subjects(server), 20)
    assert sink_subjects(server).count(subject) == 1


def test_async_send_and_pagination(server: LocalServer) -> None:
    subject = f"async {uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[str, list[str], str]:
        async with AsyncMailSage(server.url, server.key) as client:
            sent = await client.emails.send("async@example.com", subject=subject, text="x")
            account = client.account(account_id(server))
            await account.messages.create(
                from_=SENDER,
                recipients=["a1@example.com", "a2@example.com", "a3@example.com"],
                subject=f"{subject} v2",
                text_content="x",
            )
            found = [m.recipient async for m in account.messages.list(subject=f"{subject} v2", limit=2)]
            job = await client.jobs.get(sent.job_id)
            return sent.message_id, found, job.job_id

    message_id, found, job_id = asyncio.run(scenario())
    assert sorted(found) == ["a1@example.com", "a2@example.com", "a3@example.com"]
    assert message_id and job_id
    assert wait_until(lambda: subject in sink_subjects(server), 30)
    assert wait_until(lambda: sink_subjects(server).count(f"{subject} v2") == 3, 30)


def test_the_client_readme_example_runs(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the first Python example of clients/python/README.md, with this server's account
    readme = (Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.DOTALL)
    assert example is not None
    code = example.group(1).replace("your-account-id", account_id(server))
    monkeypatch.setenv("MAILSAGE_URL", server.url)
    monkeypatch.setenv("MAILSAGE_API_KEY", server.key)
    # When it runs
    exec(compile(code, "clients/python/README.md", "exec"), {})
    # Then it got as far as the error it shows
    printed = capsys.readouterr().out
    assert "100%" in printed
    assert printed.rstrip().splitlines()[-1].startswith("404 not_found")

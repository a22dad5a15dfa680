"""Webhook delivery: signed POSTs to a real HTTP receiver on loopback (which verifies the signature
on its own), retries through the real SQLite webhook queue with growing delays, the delivery log,
the webhook's counters and automatic disabling, replays, timeouts, redirects and private addresses."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mailsage.adapters.webhook_http import HttpWebhookClient
from mailsage.domain.events import delivery_body, message_event
from mailsage.domain.models import Webhook, WebhookDelivery
from mailsage.domain.webhook_delivery import RetryDelivery, WebhookDispatcher, WebhookPolicy, sign
from mailsage.local.functions import LocalContext, load_handler
from mailsage.ports import Queue, Store
from mailsage.wiring import Backends
from tests.conftest import load_event
from tests.webhook_receiver import Reply, WebhookReceiver

SECRET = "whsec_c2VjcmV0LXRoYXQtbG9va3MtYmFzZTY0"  # the key is these literal bytes, not decoded

FAST = WebhookPolicy(
    timeout_seconds=2.0,
    max_attempts=5,
    retry_base_seconds=0.05,
    retry_factor=3.0,
    retry_max_seconds=1.0,
    disable_after=100,
    log_days=30,
)


class SpyQueue:
    """The real queue, remembering the delays it was asked to retry with."""

    def __init__(self, inner: Queue) -> None:
        self.inner = inner
        self.delays: list[float] = []

    def retry_later(self, receipt: str, delay_seconds: float) -> None:
        self.delays.append(delay_seconds)
        self.inner.retry_later(receipt, delay_seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as r:
        yield r


@pytest.fixture
def store(stores: Backends) -> Store:
    return stores.store


@pytest.fixture
def queue(stores: Backends) -> SpyQueue:
    assert stores.webhooks is not None
    return SpyQueue(stores.webhooks)


def make_webhook(store: Store, url: str, secret: str = SECRET) -> Webhook:
    now = time.time()
    webhook = Webhook(
        id=str(uuid.uuid4()),
        account_id=str(uuid.uuid4()),
        name="test",
        url=url,
        secret=secret,
        enabled=True,
        events=["message.delivered"],
        created_at=now,
        updated_at=now,
    )
    store.put_webhook(webhook)
    return webhook


def event_body(webhook: Webhook) -> dict[str, Any]:
    """What the event publisher puts on the webhook queue for one delivered message."""
    event = message_event(
        "message.delivered",
        account_id=webhook.account_id,
        message_id=f"msg_{uuid.uuid4().hex}",
        recipient="user@example.com",
        from_addr="News <news@example.com>",
        subject="Hello",
        message_id_domain="mailsage.local",
    )
    return delivery_body(webhook, event)


def run(dispatcher: WebhookDispatcher, queue: SpyQueue, body: dict[str, Any], rounds: int = 12) -> list[str]:
    """Send the body through the queue and dispatch what comes back (as the webhooks function would)
    until the delivery is final; the outcome of every attempt ("retry" for a retry)."""
    queue.send([body])
    outcomes: list[str] = []
    for _ in range(rounds):
        received = queue.receive(max_messages=1, wait_seconds=3.0)
        assert received, "the delivery did not come back from the queue"
        r = received[0]
        try:
            outcome = dispatcher.dispatch(r.body, r.receipt, r.receive_count)
        except RetryDelivery:
            outcomes.append("retry")
            continue
        queue.ack(r.receipt)
        outcomes.append(outcome)
        return outcomes
    raise AssertionError(f"not final after {rounds} rounds: {outcomes}")


def logged(store: Store, body: dict[str, Any]) -> WebhookDelivery:
    delivery = store.get_webhook_delivery(body["account_id"], body["webhook_id"], body["delivery_id"])
    assert delivery is not None
    return delivery


def webhook_now(store: Store, webhook: Webhook) -> Webhook:
    current = store.get_webhook(webhook.account_id, webhook.id)
    assert current is not None
    return current


def dispatcher_for(
    store: Store, queue: SpyQueue, policy: WebhookPolicy = FAST, **kw: Any
) -> WebhookDispatcher:
    client = HttpWebhookClient(allow_private=kw.pop("allow_private", True))
    return WebhookDispatcher(store, queue, policy, client, **kw)  # type: ignore[arg-type]


# -- signing --------------------------------------------------------------------------------------


def test_a_signed_post_verifies_at_the_receiver(
    store: Store, queue: SpyQueue, receiver: WebhookReceiver
) -> None:
    webhook = make_webhook(store, receiver.url)
    body = event_body(webhook)

    assert run(dispatcher_for(store, queue), queue, body) == ["succeeded"]

    [request] = receiver.requests
    assert request.verified, request.rejection
    assert request.path == "/hooks"
    assert request.body == body["payload"].encode()  # the exact bytes that were signed
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == body["delivery_id"]
    assert request.headers["user-agent"] == "MailSage-Webhooks/1"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    assert json.loads(request.body)["type"] == "message.delivered"

    delivery = logged(store, body)
    assert delivery.status == "succeeded"
    assert [a["status_code"] for a in delivery.attempts] == [200]
    assert delivery.attempts[0]["replay"] is False and delivery.attempts[0]["error"] is None
    assert delivery.next_attempt_at is None
    assert delivery.expires_at == pytest.approx(time.time() + 30 * 86_400, abs=10)
    current = webhook_now(store, webhook)
    assert (current.success_count, current.error_count, current.errors_since_last_success) == (1, 0, 0)
    assert current.last_request_at is not None


def test_the_receiver_refuses_another_secret_and_a_stale_timestamp(receiver: WebhookReceiver) -> None:
    """The receiver really checks: the signature with the key base64-decoded, with another secret, or
    with a timestamp over five minutes old is refused."""
    import base64

    from tests.webhook_receiver import SignatureRejected, verify_signature

    payload = '{"type":"message.delivered"}'
    now = int(time.time())
    good = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(SECRET, "msg_1", now, payload),
    }
    verify_signature(SECRET, good, payload.encode())
    verify_signature(
        SECRET, {**good, "webhook-signature": "v1,AAAA " + good["webhook-signature"]}, payload.encode()
    )
    decoded_key = base64.b64decode(SECRET.removeprefix("whsec_")).decode()
    for headers, secret in [
        (good, "whsec_other"),
        (good, decoded_key),
        ({**good, "webhook-id": "msg_2"}, SECRET),
        (
            {
                **good,
                "webhook-timestamp": str(now - 301),
                "webhook-signature": sign(SECRET, "msg_1", now - 301, payload),
            },
            SECRET,
        ),
    ]:
        with pytest.raises(SignatureRejected):
            verify_signature(secret, headers, payload.encode())


def test_a_wrong_secret_is_a_failed_attempt(store: Store, queue: SpyQueue, receiver: WebhookReceiver) -> None:
    webhook = make_webhook(store, receiver.url, secret="whsec_not_what_the_receiver_knows")
    body = event_body(webhook)
    with pytest.raises(RetryDelivery):
        dispatcher_for(store, queue).dispatch(body, "r.1", 1)
    assert receiver.requests[0].verified is False
    assert logged(store, body).attempts[0]["status_code"] == 401


# -- retries --------------------------------------------------------------------------------------


def test_the_default_retry_schedule() -> None:
    delays = [WebhookPolicy().retry_delay(n) for n in range(1, 8)]
    assert delays == [30, 120, 480, 1920, 7680, 21600, 21600]


def test_a_failure_is_retried_with_growing_delays_until_it_succeeds(
    store: Store, queue: SpyQueue, receiver: WebhookReceiver
) -> None:
    webhook = make_webhook(store, receiver.url)
    body = event_body(webhook)
    receiver.respond(500, 503, 200)

    assert run(dispatcher_for(store, queue), queue, body) == ["retry", "retry", "succeeded"]

    assert queue.delays == pytest.approx([0.05, 0.15])  # base * factor^(n-1)
    requests = receiver.requests
    assert len(requests) == 3 and all(r.verified for r in requests)
    assert {r.headers["webhook-id"] for r in requests} == {body["delivery_id"]}  # receivers dedupe on it
    assert requests[1].at - requests[0].at >= 0.05 and requests[2].at - requests[1].at >= 0.15
    delivery = logged(store, body)
    assert delivery.status == "succeeded"
    assert [a["status_code"] for a in delivery.attempts] == [500, 503, 200]
    assert delivery.attempts[0]["error"] and delivery.attempts[2]["error"] is None
    assert all(a["duration_ms"] >= 0 and a["replay"] is False for a in delivery.attempts)
    current = webhook_now(store, webhook)
    assert (current.success_count, current.error_count, current.errors_since_last_success) == (1, 2, 0)
    assert current.enabled


def test_a_retrying_delivery_says_when_it_is_tried_next(
    store: Store, queue: SpyQueue, receiver: WebhookReceiver
) -> None:
    webhook = make_webhook(store, receiver.url)
    body = event_body(webhook)
    receiver.respond(500)
    policy = WebhookPolicy(timeout_seconds=2, max_attempts=8)  # the default schedule
    queue.send([body])
    [r] = queue.receive(1)
    before = time.time()
    with pytest.raises(RetryDelivery):
        dispatcher_for(store, queue, policy).dispatch(r.body, r.receipt, r.receive_count)
    assert queue.delays == [30.0]
    delivery = logged(store, body)
    assert delivery.status == "retrying"
    assert delivery.next_attempt_at == pytest.approx(before + 30, abs=2)
    assert queue.receive(1) == []  # invisible until then


def test_the_last_attempt_fails_the_delivery_without_a_retry(
    store: Store, queue: SpyQueue, receiver: WebhookReceiver
) -> None:
    webhook = make_webhook(store, receiver.url)
    body = event_body(webhook)
    receiver.respond(500, 500, 500)
    policy = WebhookPolicy(timeout_seconds=2, max_attempts=3, retry_base_seconds=0.02, retry_factor=2)

    assert run(dispatcher_for(store, queue, policy), queue, body) == ["retry", "retry", "failed"]

    assert queue.delays == pytest.approx([0.02, 0.04])  # none after the third
    assert queue.depth() == 0
    delivery = logged(store, body)
    assert delivery.status == "failed" and delivery.next_attempt_at is None
    assert len(delivery.attempts) == 3
    assert webhook_now(store, webhook).error_count == 3


def test_a_redelivered_record_of_a_finished_delivery_is_not_sent_again(
    store: Store, queue: SpyQueue, receiver: WebhookReceiver
) -> None:
    webhook = make_webhook(store, receiver.url)
    body = event_body(webhook)
    dispatcher = dispatcher_for(store, queue)
    assert dispatcher.dispatch(body, "r.1", 1) == "succeeded"
    assert dispatcher.dispatch(body, "r.2", 2) == "succeeded"  # the queue delivered it twice
    assert len(receiver.requests) == 1
    assert len(logged(store, body).attempts) == 1


# -- counters and automatic disabling -----------------------------------------------------------


def test_an_endpoint_is_disabled_after_a_run_of_failures(
    store: Store, queue: SpyQueue, receiver: WebhookReceiver
) -> None:
    webhook = make_webhook(store, receiver.url)
    receiver.respond(500, 500, 500, 500)
    policy = WebhookPolicy(timeout_seconds=2, max_attempts=10, retry_base_seconds=0.01, disable_after=3)
    dispatcher = dispatcher_for(store, queue, policy)

    first = event_body(webhook)
    # The third failure in a row disables it: the delivery fails at once instead of retrying on.
    assert run(dispatcher, queue, first) == ["retry", "retry", "failed"]
    current = webhook_now(store, webhook)
    assert not current.enabled and current.disabled_reason
    assert current.errors_since_last_success == 3

    second = event_body(webhook)  # already queued before it was disabled
    assert run(dispatcher, queue, second) == ["failed"]
    assert len(receiver.requests) == 3  # nothing more was sent
    delivery = logged(store, second)
    assert delivery.status == "failed"
    assert [(a["status_code"], a["error"]) for a in delivery.attempts] == [(None, "webhook disabled")]
    assert webhook_now(store, webhook).error_count == 3  # a delivery not sent is not counted


def test_a_success_resets_the_run_of_failures(
    store: Store, queue: SpyQueue, receiver: WebhookReceiver
) -> None:
    webhook = make_webhook(store, receiver.url)
    receiver.respond(500, 500, 200, 500, 500, 200)
    policy = WebhookPolicy(timeout_seconds=2, max_attempts=10, retry_base_seconds=0.01, disable_after=3)
    dispatcher = dispatcher_for(store, queue, policy)

    assert run(dispatcher, queue, event_body(webhook)) == ["retry", "retry", "succeeded"]
    assert run(dispatcher, queue, event_body(webhook)) == ["retry", "retry", "succeeded"]

    current = webhook_now(store, webhook)
    assert current.enabled
    assert (current.success_count, current.error_count, current.errors_since_last_success) == (2, 4, 0)


def test_a_deleted_webhook_gets_nothing(store: Store, queue: SpyQueue, receiver: WebhookReceiver) -> None:
    webhook = make_webhook(store, receiver.url)
    body = event_body(webhook)
    assert store.delete_webhook(webhook.account_id, webhook.id)
    assert run(dispatcher_for(store, queue), queue, body) == ["failed"]
    assert receiver.requests == []
    assert queue.delays == []


# -- replays --------------------------------------------------------------------------------------


def test_a_replay_sends_the_same_delivery_again_once(
    store: Store, queue: SpyQueue, receiver: WebhookReceiver
) -> None:
    webhook = make_webhook(store, receiver.url)
    body = event_body(webhook)
    dispatcher = dispatcher_for(store, queue)
    assert run(dispatcher, queue, body) == ["succeeded"]

    assert run(dispatcher, queue, {**body, "replay": True}) == ["succeeded"]

    first, again = receiver.requests
    assert again.verified
    assert again.headers["webhook-id"] == first.headers["webhook-id"] == body["delivery_id"]
    assert again.body == first.body
    delivery = logged(store, body)
    assert [a["replay"] for a in delivery.attempts] == [False, True]
    assert delivery.status == "succeeded"

    receiver.respond(500)  # a failed replay is not retried
    assert run(dispatcher, queue, {**body, "replay": True}) == ["failed"]
    assert queue.delays == []
    delivery = logged(store, body)
    assert [a["status_code"] for a in delivery.attempts] == [200, 200, 500]
    assert delivery.status == "failed"


# -- what counts as a failure -------------------------------------------------------------------


def test_a_slow_endpoint_times_out(store: Store, queue: SpyQueue, receiver: WebhookReceiver) -> None:
    webhook = make_webhook(store, receiver.url)
    body = event_body(webhook)
    receiver.respond(Reply(200, delay=3.0))
    policy = WebhookPolicy(timeout_seconds=0.5, max_attempts=3)
    started = time.monotonic()
    with pytest.raises(RetryDelivery):
        dispatcher_for(store, queue, policy).dispatch(body, "r.1", 1)
    assert time.monotonic() - started < 2.5
    [attempt] = logged(store, body).attempts
    assert attempt["status_code"] is None
    assert "no answer within 0.5 s" in attempt["error"]
    assert 400 <= attempt["duration_ms"] < 2500
    assert webhook_now(store, webhook).error_count == 1


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed(
    store: Store, queue: SpyQueue, receiver: WebhookReceiver, status: int
) -> None:
    webhook = make_webhook(store, receiver.url)
    body = event_body(webhook)
    receiver.respond(Reply(status, headers={"Location": receiver.url + "/elsewhere"}))
    with pytest.raises(RetryDelivery):
        dispatcher_for(store, queue).dispatch(body, "r.1", 1)
    time.sleep(0.2)
    assert [r.path for r in receiver.requests] == ["/hooks"]
    [attempt] = logged(store, body).attempts
    assert attempt["status_code"] == status
    assert attempt["error"] == "redirects are not followed"


def test_a_refused_connection_is_a_failed_attempt(store: Store, queue: SpyQueue) -> None:
    with WebhookReceiver() as gone:
        url = gone.url
    webhook = make_webhook(store, url)
    body = event_body(webhook)
    with pytest.raises(RetryDelivery):
        dispatcher_for(store, queue).dispatch(body, "r.1", 1)
    [attempt] = logged(store, body).attempts
    assert attempt["status_code"] is None and attempt["error"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_private_addresses_are_refused_at_send_time(
    store: Store, queue: SpyQueue, receiver: WebhookReceiver, host: str
) -> None:
    """On AWS (allow_private False) the name is resolved at every attempt and a private address is
    never connected to, even for a URL that passed the check when it was registered."""
    webhook = make_webhook(store, f"http://{host}:{receiver.port}/hooks")
    body = event_body(webhook)
    with pytest.raises(RetryDelivery):
        dispatcher_for(store, queue, allow_private=False).dispatch(body, "r.1", 1)
    assert receiver.requests == []
    [attempt] = logged(store, body).attempts
    assert attempt["status_code"] is None
    assert "not a public address" in attempt["error"]


# -- the webhooks function ------------------------------------------------------------------------


@pytest.fixture
def webhooks_handler(data_dir: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MAILSAGE_WEBHOOK_RETRY_BASE_SECONDS", "0.05")
    monkeypatch.setenv("MAILSAGE_WEBHOOK_RETRY_FACTOR", "2")
    monkeypatch.setenv("MAILSAGE_WEBHOOK_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("MAILSAGE_WEBHOOK_TIMEOUT_SECONDS", "2")
    return load_handler("webhooks")


def test_the_webhooks_function_reports_a_failed_delivery_as_a_batch_item_failure(
    store: Store, queue: SpyQueue, receiver: WebhookReceiver, webhooks_handler: Any
) -> None:
    webhook = make_webhook(store, receiver.url)
    ok, failing = event_body(webhook), event_body(webhook)
    receiver.respond(200, 500)
    queue.send([ok, failing])
    received = queue.receive(max_messages=2)
    event = load_event("sqs_webhook_delivery.json")
    sample = event["Records"][0]
    event["Records"] = [
        {**sample, "messageId": r.message_id, "receiptHandle": r.receipt, "body": json.dumps(r.body)}
        for r in received
    ]

    result = webhooks_handler.lambda_handler(event, LocalContext("mailsage-webhooks"))

    assert result == {"batchItemFailures": [{"itemIdentifier": received[1].message_id}]}
    assert logged(store, ok).status == "succeeded"
    assert logged(store, failing).status == "retrying"
    assert len(receiver.requests) == 2 and all(r.verified for r in receiver.requests)
    queue.ack(received[0].receipt)
    again = queue.receive(max_messages=1, wait_seconds=2.0)  # back after its delay, not before
    assert [r.body["delivery_id"] for r in again] == [failing["delivery_id"]]


def test_the_sample_event_is_a_valid_delivery(store: Store, webhooks_handler: Any) -> None:
    """events/sqs_webhook_delivery.json parses; its webhook does not exist here, so it is dropped."""
    event = load_event("sqs_webhook_delivery.json")
    result = webhooks_handler.lambda_handler(event, LocalContext("mailsage-webhooks"))
    assert result == {"batchItemFailures": []}
    body = json.loads(event["Records"][0]["body"])
    assert logged(store, body).attempts[0]["error"] == "webhook deleted"


# -- the embedded runtime -------------------------------------------------------------------------


def test_the_local_runtime_delivers_events_to_a_webhook(
    data_dir: Any, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mailsage serve` end to end in-process: the api accepts a send, the sender hands it to the
    sink, the sink's delivery notification goes through the events loop, and the webhook loop posts
    every event, signed, to the endpoint."""
    import requests

    from mailsage.local.runtime import LocalRuntime, RuntimeConfig
    from tests.conftest import free_port

    config = RuntimeConfig(data_dir, port=free_port(), smtp_port=free_port(), workers=1)
    for name, value in {
        "MAILSAGE_SMTP_URL": f"smtp://127.0.0.1:{config.smtp_port}",
        "MAILSAGE_PUBLIC_URL": f"http://127.0.0.1:{config.port}",
    }.items():
        monkeypatch.setenv(name, value)  # restored after the test (the runtime sets what is unset)
    runtime = LocalRuntime(config)
    account_id, key = runtime.start()
    try:
        assert runtime.backends is not None
        now = time.time()
        webhook = Webhook(
            id=str(uuid.uuid4()),
            account_id=account_id,
            name="local",
            url=receiver.url,
            secret=SECRET,
            enabled=True,
            events=["job.completed", "message.delivered", "message.reception"],
            created_at=now,
            updated_at=now,
        )
        runtime.backends.store.put_webhook(webhook)
        reply = requests.post(
            f"http://127.0.0.1:{config.port}/api/v1/emails/send",
            json={"recipient": {"email": "user@example.com"}, "subject": "s", "body": "b"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert reply.status_code == 202, reply.text
        requests_ = receiver.wait_for(3, timeout=20)
    finally:
        runtime.stop()
    assert all(r.verified for r in requests_)
    payloads = [json.loads(r.body) for r in requests_]
    assert sorted(p["type"] for p in payloads) == ["job.completed", "message.delivered", "message.reception"]
    delivered = next(p for p in payloads if p["type"] == "message.delivered")
    assert delivered["data"]["id"] == reply.json()["message_id"]
    assert delivered["webhook_id"] == webhook.id


# -- on the AWS adapters --------------------------------------------------------------------------


def test_the_webhooks_function_on_dynamodb_and_sqs(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployed shape under moto: the delivery log and counters in DynamoDB, the retry delay as
    the SQS message's visibility (whole seconds), the record coming back with its receive count."""
    import boto3

    from mailsage.adapters.aws.dynamodb import DynamoStore
    from mailsage.adapters.aws.sqs_queue import SqsQueue
    from tests.contract.aws_store import dynamodb_table

    with dynamodb_table("mailsage-webhooks") as table_name:
        sqs = boto3.client("sqs")
        send_url = sqs.create_queue(QueueName="send")["QueueUrl"]
        webhook_url = sqs.create_queue(QueueName="webhooks", Attributes={"VisibilityTimeout": "180"})[
            "QueueUrl"
        ]
        for name, value in {
            "MAILSAGE_BACKEND": "aws",
            "MAILSAGE_TABLE_NAME": table_name,
            "MAILSAGE_SEND_QUEUE_URL": send_url,
            "MAILSAGE_WEBHOOK_QUEUE_URL": webhook_url,
            "MAILSAGE_ALLOW_PRIVATE_WEBHOOK_URLS": "true",  # the receiver is on loopback
            "MAILSAGE_WEBHOOK_RETRY_BASE_SECONDS": "1",
            "MAILSAGE_WEBHOOK_TIMEOUT_SECONDS": "2",
        }.items():
            monkeypatch.setenv(name, value)
        handler = load_handler("webhooks")
        store = DynamoStore(table_name)
        queue = SqsQueue(webhook_url)
        webhook = make_webhook(store, receiver.url)
        body = event_body(webhook)
        queue.send([body])
        receiver.respond(500, 200)

        def invoke() -> dict[str, Any]:
            received = queue.receive(max_messages=2, wait_seconds=3)
            assert len(received) == 1
            event = load_event("sqs_webhook_delivery.json")
            record = event["Records"][0]
            record.update(receiptHandle=received[0].receipt, body=json.dumps(received[0].body))
            record["attributes"]["ApproximateReceiveCount"] = str(received[0].receive_count)
            result: dict[str, Any] = handler.lambda_handler(event, LocalContext("mailsage-webhooks"))
            if not result["batchItemFailures"]:
                queue.ack(received[0].receipt)
            return result

        assert invoke()["batchItemFailures"]  # 500: back after its delay
        assert logged(store, body).status == "retrying"
        assert invoke() == {"batchItemFailures": []}

        delivery = logged(store, body)
        assert delivery.status == "succeeded"
        assert [a["status_code"] for a in delivery.attempts] == [500, 200]
        assert all(r.verified for r in receiver.requests)
        current = webhook_now(store, webhook)
        assert (current.success_count, current.error_count, current.errors_since_last_success) == (1, 1, 0)
        assert queue.depth() == 0


def test_a_failed_replay_keeps_the_automatic_retries_still_ahead(
    store: Store, queue: SpyQueue, receiver: WebhookReceiver
) -> None:
    webhook = make_webhook(store, receiver.url)
    body = event_body(webhook)
    dispatcher = dispatcher_for(store, queue)
    receiver.respond(500, 500)  # the first attempt and the replay; then 200
    queue.send([body])
    [first] = queue.receive(max_messages=1, wait_seconds=3.0)
    with pytest.raises(RetryDelivery):
        dispatcher.dispatch(first.body, first.receipt, first.receive_count)
    retrying = logged(store, body)
    assert retrying.status == "retrying" and retrying.next_attempt_at is not None

    # The replay fails too: one more attempt in the log, and the retry stays scheduled.
    assert dispatcher.dispatch({**body, "replay": True}, "replay.receipt", 1) == "retrying"
    after_replay = logged(store, body)
    assert after_replay.status == "retrying"
    assert after_replay.next_attempt_at == retrying.next_attempt_at
    assert [a["replay"] for a in after_replay.attempts] == [False, True]

    # The automatic retry comes back from the queue and succeeds.
    [again] = queue.receive(max_messages=1, wait_seconds=3.0)
    assert again.receive_count == 2
    assert dispatcher.dispatch(again.body, again.receipt, again.receive_count) == "succeeded"
    assert logged(store, body).status == "succeeded"
    assert [r.headers["webhook-id"] for r in receiver.requests] == [body["delivery_id"]] * 3

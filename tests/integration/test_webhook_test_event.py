"""Sending a test event to a webhook (`POST /api/v1/webhooks/{id}/test` and the v2 extension
`POST /v2/accounts/{account_id}/webhooks/{id}/test`): a sample of the chosen type goes through the
webhook queue and the real webhooks function to a receiver on loopback, signed as the webhook signs
(checked with `standardwebhooks` for v1, AhaSend's scheme for v2), marked as a test, logged, tried
once and not counted in the webhook's statistics. On both runtimes. v2 replies are checked against
MailSage's OpenAPI document (the extension is not in the AhaSend contract)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from mailsage.api.dependencies import webhook_service_dep
from mailsage.domain.webhooks import WebhookService
from tests.conftest import Reply
from tests.contract.test_v2_webhooks import check_against_openapi
from tests.integration.webhook_runtime import RUNTIMES, Runtime, start
from tests.webhook_receiver import WebhookReceiver, verify_signature

V1 = "/api/v1/webhooks"


def v2_hooks(runtime: Runtime) -> str:
    return f"/v2/accounts/{runtime.account.id}/webhooks"


@pytest.fixture(params=RUNTIMES)
def runtime(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    yield from start(request.param, tmp_path, monkeypatch)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:  # no secret: the tests verify what arrived themselves
        yield r


def create_v1(runtime: Runtime, url: str, events: list[str]) -> dict[str, Any]:
    reply = runtime.api().post(V1, {"name": "test events", "url": url, "events": events})
    assert reply.status == 201, reply.body
    return reply.body  # type: ignore[no-any-return]


def create_v2(runtime: Runtime, url: str, **flags: bool) -> dict[str, Any]:
    body = {"name": "test events", "url": url, "scope": "global", **flags}
    reply = runtime.api().post(v2_hooks(runtime), body)
    assert reply.status == 201, reply.body
    return reply.body  # type: ignore[no-any-return]


def v2_post(runtime: Runtime, path: str, body: Any = None, **kw: Any) -> Reply:
    reply = runtime.api(**kw).post(path, body)
    check_against_openapi("POST", path, reply)
    return reply


def expect_v1_error(reply: Reply, status: int, code: str) -> None:
    assert reply.status == status, reply.body
    assert reply.error["code"] == code, reply.body


def expect_v2_error(reply: Reply, status: int, fragment: str) -> None:
    assert reply.status == status, reply.body
    assert set(reply.body) == {"message"} and fragment in reply.body["message"], reply.body


# -- v1 ---------------------------------------------------------------------------------------------


def test_v1_sends_a_signed_sample_marked_as_a_test(runtime: Runtime, receiver: WebhookReceiver) -> None:
    # Given a v1 webhook on message.bounced
    hook = create_v1(runtime, receiver.url, ["message.bounced"])

    # When a test event of that type is asked for and the webhooks function runs
    reply = runtime.api().post(f"{V1}/{hook['id']}/test", {"event_type": "message.bounced"})
    assert reply.status == 202, reply.body
    assert runtime.deliver() == {"batchItemFailures": []}

    # Then one POST arrived, which the official library verifies with the webhook's secret
    [request] = receiver.wait_for(1)
    payload = standardwebhooks.Webhook(hook["secret"]).verify(request.body, request.headers)
    # carrying the sample the reply announced, marked as a test, shaped like a real event
    assert reply.body == {
        "delivery_id": request.headers["webhook-id"],
        "webhook_id": hook["id"],
        "event_type": "message.bounced",
        "status": "queued",
        "payload": payload,
    }
    assert payload["test"] is True and payload["type"] == "message.bounced"
    assert payload["webhook_id"] == hook["id"]
    assert payload["data"]["event"] == "on_bounced" and payload["data"]["account_id"] == runtime.account.id
    assert payload["data"]["recipient"].endswith("@example.com")

    # And it is in the delivery log, while the webhook's statistics did not change
    [logged] = runtime.api().get(f"{V1}/{hook['id']}/deliveries").body["data"]
    assert (logged["id"], logged["status"], logged["payload"]) == (
        reply.body["delivery_id"],
        "succeeded",
        payload,
    )
    current = runtime.api().get(f"{V1}/{hook['id']}").body
    assert (current["success_count"], current["error_count"], current["last_request_at"]) == (0, 0, None)


def test_v1_without_a_body_samples_the_first_subscription(
    runtime: Runtime, receiver: WebhookReceiver
) -> None:
    # Given a webhook on job.completed and message.failed only
    hook = create_v1(runtime, receiver.url, ["message.failed", "job.completed"])

    # When a test event is asked for without a body
    reply = runtime.api().post(f"{V1}/{hook['id']}/test")

    # Then the first subscription is sampled: a job event with a made-up job
    assert reply.status == 202, reply.body
    assert reply.body["event_type"] == "job.completed"
    assert reply.body["payload"]["data"]["state"] == "completed"
    runtime.deliver()
    [request] = receiver.wait_for(1)
    assert json.loads(request.body) == reply.body["payload"]


def test_a_failed_test_is_tried_once_and_not_counted(runtime: Runtime, receiver: WebhookReceiver) -> None:
    # Given a webhook whose endpoint answers 500
    hook = create_v1(runtime, receiver.url, ["message.delivered"])
    receiver.respond(500, 500)

    # When a test event is sent, and then replayed
    delivery_id = runtime.api().post(f"{V1}/{hook['id']}/test").body["delivery_id"]
    assert runtime.deliver() == {"batchItemFailures": []}  # not retried
    replay = runtime.api().post(f"{V1}/{hook['id']}/deliveries/{delivery_id}/replay")
    assert replay.status == 202, replay.body
    assert runtime.deliver() == {"batchItemFailures": []}

    # Then each was one attempt, logged as failed, and the webhook counted none of them
    assert len(receiver.wait_for(2)) == 2
    assert runtime.backends.webhooks is not None and runtime.backends.webhooks.depth() == 0
    [logged] = runtime.api().get(f"{V1}/{hook['id']}/deliveries").body["data"]
    assert logged["status"] == "failed" and logged["next_attempt_at"] is None
    assert [(a["status_code"], a["replay"]) for a in logged["attempts"]] == [(500, False), (500, True)]
    current = runtime.api().get(f"{V1}/{hook['id']}").body
    assert (current["error_count"], current["errors_since_last_success"], current["enabled"]) == (0, 0, True)


def test_v1_errors(runtime: Runtime) -> None:
    hook = create_v1(runtime, "http://127.0.0.1:9/hook", ["message.delivered"])["id"]
    test = f"{V1}/{hook}/test"
    api = runtime.api()
    # an unknown webhook, or another account's, is not found
    expect_v1_error(api.post(f"{V1}/00000000-0000-4000-8000-000000000000/test"), 404, "not_found")
    other = runtime.new_account()
    expect_v1_error(runtime.api(key=other.key).post(test), 404, "not_found")
    # an unknown event type, or an unknown field, is refused
    expect_v1_error(api.post(test, {"event_type": "message.exploded"}), 400, "validation_error")
    expect_v1_error(api.post(test, {"type": "message.delivered"}), 400, "validation_error")
    # no key
    assert runtime.api(key=None).post(test).status == 401
    # a disabled webhook
    assert api.request("PATCH", f"{V1}/{hook}", {"enabled": False}).status == 200
    expect_v1_error(api.post(test), 409, "conflict")
    # nothing was queued
    assert runtime.backends.webhooks is not None and runtime.backends.webhooks.depth() == 0


def test_v1_without_a_webhook_queue_is_503(runtime: Runtime) -> None:
    hook = create_v1(runtime, "http://127.0.0.1:9/hook", ["message.delivered"])["id"]
    without_queue = WebhookService(runtime.backends.store, None, allow_private=True)
    runtime.handler("api").app.dependency_overrides[webhook_service_dep] = lambda **_: without_queue
    expect_v1_error(runtime.api().post(f"{V1}/{hook}/test"), 503, "service_unavailable")
    expect_v1_error(runtime.api().post(f"{V1}/{hook}x/test"), 404, "not_found")


# -- v2 (MailSage extension) ------------------------------------------------------------------------


def test_v2_sends_a_sample_signed_as_ahasend(runtime: Runtime, receiver: WebhookReceiver) -> None:
    # Given a v2 webhook on delivered events
    hook = create_v2(runtime, receiver.url, on_delivered=True)

    # When a test event is asked for without a body and the webhooks function runs
    reply = v2_post(runtime, f"{v2_hooks(runtime)}/{hook['id']}/test")
    assert reply.status == 202, reply.body
    runtime.deliver()

    # Then the POST verifies with the literal secret (AhaSend's scheme) and carries the sample
    [request] = receiver.wait_for(1)
    verify_signature(hook["secret"], request.headers, request.body)
    payload = json.loads(request.body)
    assert reply.body == {
        "object": "webhook_test_event",
        "delivery_id": request.headers["webhook-id"],
        "webhook_id": hook["id"],
        "event_type": "message.delivered",
        "status": "queued",
        "payload": payload,
    }
    assert payload["test"] is True and payload["data"]["event"] == "on_delivered"


def test_v2_errors(runtime: Runtime) -> None:
    hook = create_v2(runtime, "http://127.0.0.1:9/hook", on_delivered=True)["id"]
    hooks = v2_hooks(runtime)
    test = f"{hooks}/{hook}/test"
    # an unknown webhook, another account's webhook or path
    expect_v2_error(v2_post(runtime, f"{hooks}/00000000-0000-4000-8000-000000000000/test"), 404, "not found")
    other = runtime.new_account()
    other_hooks = f"/v2/accounts/{other.id}/webhooks"
    expect_v2_error(v2_post(runtime, f"{other_hooks}/{hook}/test", key=other.key), 404, "not found")
    expect_v2_error(v2_post(runtime, test, key=other.key), 403, "account")
    assert v2_post(runtime, test, key=None).status == 401
    # job.* events have no v2 flag: not a v2 test event
    expect_v2_error(v2_post(runtime, test, {"event_type": "job.completed"}), 400, "event_type")
    # a disabled webhook
    assert runtime.api().put(f"{hooks}/{hook}", {"enabled": False}).status == 200
    expect_v2_error(v2_post(runtime, test), 409, "disabled")
    assert runtime.backends.webhooks is not None and runtime.backends.webhooks.depth() == 0
    # without a webhook queue
    assert runtime.api().put(f"{hooks}/{hook}", {"enabled": True}).status == 200
    without_queue = WebhookService(runtime.backends.store, None, allow_private=True)
    runtime.handler("api").app.dependency_overrides[webhook_service_dep] = lambda **_: without_queue
    expect_v2_error(v2_post(runtime, test), 503, "not configured")

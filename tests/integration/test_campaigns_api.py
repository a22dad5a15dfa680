"""GET /api/v1/campaigns/{campaign_id}: totals and rates over every job of the account with the
campaign id. Batches are submitted through the API; their messages are then moved through the
statuses the pipeline gives them (store transitions) or sent through the sandbox provider."""

from __future__ import annotations

import time
from typing import Any

from mailsage.domain.models import MessageStatus
from mailsage.wiring import Backends
from tests.conftest import Account, ApiClient, Worker

CAMPAIGNS = "/api/v1/campaigns"


def batch(api: ApiClient, campaign_id: str | None, emails: list[str], **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "recipients": [{"email": e, "variables": {"n": i}} for i, e in enumerate(emails)],
        "subject": "Hello {{ n }}",
        "body": "Number {{ n }}",
        "from": "news@example.com",
        **fields,
    }
    if campaign_id is not None:
        body["campaign_id"] = campaign_id
    reply = api.post("/api/v1/emails/batch", body)
    assert reply.status == 202, reply.body
    return reply.body  # type: ignore[no-any-return]


def move(stores: Backends, account: Account, job_id: str, message_id: str, *path: MessageStatus) -> None:
    """queued -> sending -> path[0] (the sender's outcome) -> path[1:] (provider notifications)."""
    store = stores.store
    assert store.claim_messages(job_id, [message_id], 60.0) == [message_id]
    assert store.finish_message(message_id, path[0])
    previous = path[0]
    for status in path[1:]:
        assert store.update_delivery_status(account.id, message_id, status, [previous])
        previous = status


def stats(api: ApiClient, campaign_id: str) -> dict[str, Any]:
    reply = api.get(f"{CAMPAIGNS}/{campaign_id}")
    assert reply.status == 200, reply.body
    return reply.body  # type: ignore[no-any-return]


S = MessageStatus


def test_totals_and_rates_over_two_batches(api: ApiClient, stores: Backends, account: Account) -> None:
    first = batch(api, "spring", [f"a{i}@example.com" for i in range(6)])
    second = batch(
        api,
        "spring",
        ["b0@example.com", "not-an-address", "b1@example.com", "b2@example.com", "b3@example.com"],
    )
    assert (first["accepted"], second["accepted"], second["rejected"]) == (
        6,
        4,
        1,
    )  # the bad one is no message
    # Not part of the campaign: another campaign, and a batch without one
    other = batch(api, "autumn", ["c0@example.com"])
    plain = batch(api, None, ["d0@example.com"])

    messages = [(first["job_id"], m["message_id"]) for m in first["messages"]] + [
        (second["job_id"], m["message_id"]) for m in second["messages"]
    ]
    paths = [
        (S.SENT, S.DELIVERED),  # 0: opened twice, clicked twice
        (S.SENT, S.DELIVERED),  # 1: opened, unsubscribed
        (S.SENT, S.DELIVERED, S.COMPLAINED),  # 2: opened
        (S.SENT, S.BOUNCED),  # 3
        (S.FAILED,),  # 4
        (S.SUPPRESSED,),  # 5
        (S.DEFERRED,),  # 6
        (S.SENT,),  # 7
        # 8 and 9 stay queued
    ]
    for (job_id, message_id), path in zip(messages, paths, strict=False):
        move(stores, account, job_id, message_id, *path)
    for job_id, message_id in (
        (other["job_id"], other["messages"][0]["message_id"]),
        (
            plain["job_id"],
            plain["messages"][0]["message_id"],
        ),
    ):
        move(stores, account, job_id, message_id, S.SENT, S.DELIVERED)
    now = time.time()
    engagement = [(0, "opened"), (0, "opened"), (0, "clicked"), (0, "clicked"), (1, "opened")]
    engagement += [(1, "unsubscribed"), (2, "opened")]
    for index, kind in engagement:
        assert stores.store.record_engagement(account.id, messages[index][1], kind, now) is not None

    assert stats(api, "spring") == {
        "campaign_id": "spring",
        "jobs": 2,
        "recipients": 10,
        "queued": 2,
        "sent": 6,  # sent, delivered x2, deferred, bounced, complained
        "delivered": 3,  # delivered x2 + complained
        "bounced": 1,
        "complained": 1,
        "failed": 1,
        "suppressed": 1,
        "opened": 3,
        "clicked": 1,
        "unsubscribed": 1,
        "rates": {
            "delivery_rate": 0.5,
            "bounce_rate": 0.1667,
            "complaint_rate": 0.1667,
            "open_rate": 1.0,
            "click_rate": 0.3333,
            "unsubscribe_rate": 0.3333,
        },
    }
    autumn = stats(api, "autumn")
    assert (autumn["jobs"], autumn["recipients"], autumn["sent"], autumn["delivered"]) == (1, 1, 1, 1)
    assert autumn["rates"]["delivery_rate"] == 1.0 and autumn["rates"]["open_rate"] == 0.0


def test_a_campaign_with_nothing_sent_has_zero_rates(api: ApiClient) -> None:
    batch(api, "later", ["a@example.com", "b@example.com"])
    body = stats(api, "later")
    assert (body["jobs"], body["recipients"], body["queued"], body["sent"], body["delivered"]) == (
        1,
        2,
        2,
        0,
        0,
    )
    assert set(body["rates"].values()) == {0.0}
    assert all(isinstance(v, float) for v in body["rates"].values())


def test_sent_through_the_sandbox(api: ApiClient, worker: Worker) -> None:
    # The sandbox provider accepts every message (status sent); delivery would be a later notification.
    batch(api, "sandboxed", ["a@example.com", "b@example.com"], provider="sandbox")
    batch(api, "sandboxed", ["c@example.com"], provider="sandbox")
    before = stats(api, "sandboxed")
    assert (before["recipients"], before["queued"], before["sent"]) == (3, 3, 0)
    worker.drain()
    body = stats(api, "sandboxed")
    assert (body["jobs"], body["recipients"], body["queued"], body["sent"], body["delivered"]) == (
        2,
        3,
        0,
        3,
        0,
    )
    assert body["rates"]["delivery_rate"] == 0.0 and body["rates"]["bounce_rate"] == 0.0


def test_unknown_and_another_accounts_campaigns_are_404(
    api: ApiClient, api_handler: Any, new_account: Any
) -> None:
    batch(api, "mine", ["a@example.com"])
    missing = api.get(f"{CAMPAIGNS}/nope")
    assert missing.status == 404 and missing.body["error"]["code"] == "not_found"
    assert "nope" in missing.body["error"]["message"]
    other = ApiClient(api_handler, new_account().key)
    hidden = other.get(f"{CAMPAIGNS}/mine")
    assert hidden.status == 404 and hidden.body["error"]["code"] == "not_found"
    assert api.get(f"{CAMPAIGNS}/mine", key=None).status == 401

"""Suppressions through the v2 API (create, list, delete, delete all), and their effect: a suppressed
recipient is never sent to, on both API surfaces, whether it was suppressed before the request or
after it was accepted."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from mailsage.domain.models import MessageStatus
from mailsage.domain.suppressions import SuppressionService
from mailsage.local.sink import SmtpSink
from mailsage.wiring import Backends
from tests.conftest import Account, ApiClient, Reply, Worker, read_eml


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


LATER = rfc3339(time.time() + 30 * 86400)


class Suppressions:
    def __init__(self, api: ApiClient, account: Account) -> None:
        self.api = api
        self.account = account
        self.base = f"/v2/accounts/{account.id}/suppressions"

    def create(self, email: str, status: int = 201, **fields: Any) -> Reply:
        reply = self.api.post(self.base, {"email": email, "expires_at": LATER, **fields})
        assert reply.status == status, reply.body
        return reply

    def list(self, query: str = "") -> list[dict[str, Any]]:
        reply = self.api.get(f"{self.base}?{query}")
        assert reply.status == 200, reply.body
        return reply.body["data"]  # type: ignore[no-any-return]

    def emails(self, query: str = "") -> list[tuple[str, str]]:
        return sorted((s["email"], s["domain"]) for s in self.list(query))


@pytest.fixture
def sup(api: ApiClient, account: Account) -> Suppressions:
    return Suppressions(api, account)


def v2_send(
    api: ApiClient, account: Account, *emails: str, sender: str = "hello@example.com"
) -> list[dict[str, Any]]:
    reply = api.post(
        f"/v2/accounts/{account.id}/messages",
        {
            "from": {"email": sender},
            "recipients": [{"email": e} for e in emails],
            "subject": "Hi",
            "text_content": "Hello",
        },
    )
    assert reply.status == 202, reply.body
    return reply.body["data"]  # type: ignore[no-any-return]


def v2_status(api: ApiClient, account: Account, message_id: str) -> str:
    reply = api.get(f"/v2/accounts/{account.id}/messages/{quote(message_id)}")
    assert reply.status == 200, reply.body
    return str(reply.body["status"])


def at_sink(sink: SmtpSink) -> list[str]:
    return sorted(str(read_eml(p)["To"]) for p in sink.messages())


# -- the API -----------------------------------------------------------------------------------------


def test_create_list_and_delete(sup: Suppressions) -> None:
    created = sup.create("User@Example.COM", reason="asked to stop").body
    [entry] = created["data"]
    assert created["object"] == "list"
    assert entry["object"] == "suppression" and entry["email"] == "user@example.com"  # lower-cased
    assert entry["domain"] == "" and entry["reason"] == "asked to stop" and entry["expires_at"] == LATER
    sup.create("user@example.com", domain="News.Example.com")
    sup.create("other@example.com")
    assert sup.create("other@example.com", status=409).body == {
        "message": "other@example.com is already suppressed for every domain"
    }

    assert sup.emails() == [
        ("other@example.com", ""),
        ("user@example.com", ""),
        ("user@example.com", "news.example.com"),
    ]
    assert sup.emails("email=USER@example.com") == [
        ("user@example.com", ""),
        ("user@example.com", "news.example.com"),
    ]
    assert sup.emails("domain=news.example.com") == [("user@example.com", "news.example.com")]
    assert sup.emails(f"from_time={quote(rfc3339(time.time() + 60))}") == []
    assert len(sup.emails(f"to_time={quote(rfc3339(time.time() + 60))}")) == 3

    # Deleting with a domain deletes that one only; without, every one of the address
    reply = sup.api.delete(f"{sup.base}?email=user@example.com&domain=news.example.com")
    assert reply.status == 200 and reply.body == {"message": "deleted 1 suppression of user@example.com"}
    assert sup.emails("email=user@example.com") == [("user@example.com", "")]
    assert sup.api.delete(f"{sup.base}?email=user@example.com").status == 200
    missing = sup.api.delete(f"{sup.base}?email=user@example.com")
    assert missing.status == 404 and missing.body == {"message": "no suppression of user@example.com"}
    assert sup.emails() == [("other@example.com", "")]


def test_delete_all_of_the_account_or_of_one_domain(sup: Suppressions) -> None:
    for email in ("a@example.com", "b@example.com"):
        sup.create(email)
        sup.create(email, domain="shop.example.com")
    reply = sup.api.delete(f"{sup.base}/all?domain=shop.example.com")
    assert reply.status == 200 and reply.body == {"message": "deleted 2 suppressions"}
    assert sup.emails() == [("a@example.com", ""), ("b@example.com", "")]
    assert sup.api.delete(f"{sup.base}/all").body == {"message": "deleted 2 suppressions"}
    assert sup.list() == []
    assert sup.api.delete(f"{sup.base}/all").body == {"message": "deleted 0 suppressions"}


def test_pages(sup: Suppressions) -> None:
    for i in range(5):
        sup.create(f"u{i}@example.com")
    seen: list[str] = []
    query = "limit=2"
    pages = []
    while True:
        reply = sup.api.get(f"{sup.base}?{query}").body
        pages.append(reply)
        seen += [s["email"] for s in reply["data"]]
        if not reply["pagination"]["has_more"]:
            break
        query = f"limit=2&after={reply['pagination']['next_cursor']}"
    assert sorted(seen) == [f"u{i}@example.com" for i in range(5)] and len(pages) == 3
    back = sup.api.get(f"{sup.base}?limit=2&before={pages[2]['pagination']['previous_cursor']}").body
    assert (
        back["data"] == pages[1]["data"]
        and back["pagination"]["previous_cursor"] == pages[1]["data"][0]["id"]
    )


def test_expired_suppressions_are_not_listed_and_not_applied(
    api: ApiClient, account: Account, sup: Suppressions, worker: Worker, smtp_sink: SmtpSink
) -> None:
    sup.api.post(sup.base, {"email": "brief@example.com", "expires_at": rfc3339(time.time() + 1.5)})
    [blocked] = v2_send(api, account, "brief@example.com")
    assert blocked["status"] == "error"
    time.sleep(2.1)
    assert sup.list() == []
    [entry] = v2_send(api, account, "brief@example.com")
    worker.drain()
    assert entry["status"] == "queued" and at_sink(smtp_sink) == ["brief@example.com"]


def test_suppressions_belong_to_one_account(
    sup: Suppressions, api_handler: Any, new_account: Any, worker: Worker, smtp_sink: SmtpSink
) -> None:
    sup.create("shared@example.com")
    other_account = new_account()
    other = Suppressions(ApiClient(api_handler, other_account.key), other_account)
    assert other.list() == []
    assert other.api.delete(f"{other.base}?email=shared@example.com").status == 404
    [entry] = v2_send(other.api, other_account, "shared@example.com")
    worker.drain()
    assert entry["status"] == "queued" and at_sink(smtp_sink) == ["shared@example.com"]
    assert sup.emails() == [("shared@example.com", "")]


# -- never sent to, on both surfaces -----------------------------------------------------------------


def test_a_suppressed_recipient_is_an_error_entry_and_listed_as_suppressed(
    api: ApiClient, account: Account, sup: Suppressions, worker: Worker, smtp_sink: SmtpSink
) -> None:
    sup.create("blocked@example.com")
    entries = v2_send(api, account, "ok@example.com", "BLOCKED@example.com")
    worker.drain()
    assert [e["status"] for e in entries] == ["queued", "error"]
    assert entries[1]["error"] == "the recipient is on the suppression list"
    assert v2_status(api, account, entries[1]["id"]) == "Suppressed"
    assert at_sink(smtp_sink) == ["ok@example.com"]
    listed = api.get(f"/v2/accounts/{account.id}/messages?status=Suppressed").body["data"]
    assert [m["recipient"] for m in listed] == ["BLOCKED@example.com"]  # the address as given


def test_v1_never_sends_to_a_suppressed_recipient(
    api: ApiClient, account: Account, sup: Suppressions, worker: Worker, smtp_sink: SmtpSink, stores: Backends
) -> None:
    sup.create("blocked@example.com")
    send = api.post(
        "/api/v1/emails/send", {"recipient": {"email": "blocked@example.com"}, "subject": "Hi", "body": "x"}
    )
    assert send.status == 202 and send.body["status"] == "suppressed"
    batch = api.post(
        "/api/v1/emails/batch",
        {
            "recipients": [{"email": "a@example.com"}, {"email": "blocked@example.com"}],
            "subject": "Hi",
            "body": "x",
        },
    )
    assert batch.status == 202
    assert [(m["email"], m["status"]) for m in batch.body["messages"]] == [
        ("a@example.com", "queued"),
        ("blocked@example.com", "suppressed"),
    ]
    worker.drain()
    assert at_sink(smtp_sink) == ["a@example.com"]
    job = api.get(f"/api/v1/emails/jobs/{batch.body['job_id']}").body
    assert job["counts"]["suppressed"] == 1 and job["counts"]["sent"] == 1 and job["state"] == "completed"
    # v1 messages are visible on v2 too, with the v2 status name
    assert v2_status(api, account, send.body["message_id"]) == "Suppressed"


@pytest.mark.parametrize("surface", ["v1", "v2"])
def test_a_suppression_added_after_acceptance_stops_the_send(
    api: ApiClient, account: Account, sup: Suppressions, worker: Worker, smtp_sink: SmtpSink, surface: str
) -> None:
    if surface == "v2":
        [entry] = v2_send(api, account, "late@example.com")
        message_id = entry["id"]
    else:
        reply = api.post(
            "/api/v1/emails/send", {"recipient": {"email": "late@example.com"}, "subject": "Hi", "body": "x"}
        )
        message_id = reply.body["message_id"]
    sup.create("late@example.com")  # a bounce or an unsubscribe, while the message waits in the queue
    worker.drain()
    assert smtp_sink.messages() == []
    assert v2_status(api, account, message_id) == "Suppressed"


def test_a_domain_suppression_applies_to_mail_from_that_domain_only(
    api: ApiClient, account: Account, sup: Suppressions, worker: Worker, smtp_sink: SmtpSink
) -> None:
    sup.create("reader@example.com", domain="news.example.com")
    [news] = v2_send(api, account, "reader@example.com", sender="weekly@news.example.com")
    [billing] = v2_send(api, account, "reader@example.com", sender="invoices@billing.example.com")
    worker.drain()
    assert news["status"] == "error" and billing["status"] == "queued"
    [received] = [read_eml(p) for p in smtp_sink.messages()]
    assert received["From"].addresses[0].addr_spec == "invoices@billing.example.com"


def test_automatic_suppressions_extend_rather_than_conflict(stores: Backends, account: Account) -> None:
    service = SuppressionService(stores.store)
    now = time.time()
    first = service.suppress(account.id, "bounced@example.com", None, "hard bounce", now + 3600)
    again = service.suppress(account.id, "Bounced@example.com", None, "hard bounce again", now + 7200)
    shorter = service.suppress(account.id, "bounced@example.com", None, "complaint", now + 60)
    assert again.id == first.id == shorter.id and again.created_at == first.created_at
    assert shorter.expires_at == now + 7200  # never shortened
    [stored], _ = stores.store.list_suppressions(account.id, None, None, None, None, 10, None)
    assert stored.reason == "complaint" and stored.expires_at == now + 7200
    assert stores.store.suppressed(account.id, ["BOUNCED@example.com"], "example.com", now) == {
        "bounced@example.com"
    }
    assert MessageStatus.SUPPRESSED.value == "suppressed"

"""Feedback on the embedded runtime, the cases test_feedback_events.py leaves open: a delivery
notification that arrives after an open, how long automatic suppressions last, tracking and
List-Unsubscribe on v2 messages, and webhook payloads checked against AhaSend's webhooks.yaml.
It uses that module's fixtures (imported, so F811 flags each test that takes one)."""
# ruff: noqa: F811

from __future__ import annotations

import json
import re
import time
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from mailsage.domain.events import iso
from mailsage.domain.models import Suppression, Webhook
from mailsage.local.functions import load_handler
from mailsage.local.sink import SmtpSink
from mailsage.wiring import Backends
from tests.conftest import ROOT, Account, ApiClient, Worker, load_event, read_eml
from tests.contract.test_ahasend_contract import FORMATS
from tests.integration.test_feedback_events import (  # noqa: F401 (fixtures)
    Feedback,
    _tracking,
    batch,
    feedback,
    hook,
    links_in,
    message_of,
    published,
    smtp_sink,
    types_for,
)

DAY = 86_400
PUBLIC_URL = "https://mail.example.test"  # what test_feedback_events' _tracking sets
SENDER = "news@acme-mail.com"
LINK = "https://example.com/a?x=1&amp;y=2"
HTML = f'<html><body><p>Hi <a href="{LINK}">A</a></p></body></html>'


def hit(api: ApiClient, url: str) -> int:
    """A recipient following a tracking URL of their mail."""
    return api.get(urlsplit(url).path, key=None, headers={"User-Agent": "Mail/1.0"}).status


def suppressions_of(stores: Backends, account: Account, email: str) -> list[Suppression]:
    items, _ = stores.store.list_suppressions(account.id, email, None, None, None, 10, None)
    return items


# -- a. a delivery notification after an open -------------------------------------------------------


def test_a_delivery_notification_after_an_open_changes_nothing_and_counts_the_delivery_once(
    api: ApiClient,
    worker: Worker,
    feedback: Feedback,
    smtp_sink: SmtpSink,
    stores: Backends,
    account: Account,
    hook: Webhook,
) -> None:
    job = batch(api, ["reader@example.com"], tracking={"open": True, "click": True}, campaign_id="late-news")
    worker.drain()
    [notification] = feedback.notifications  # the sink's delivery report, held back: it arrives late
    assert notification["outcome"] == "delivered"
    published(stores)
    pixel, _, _ = links_in(smtp_sink.messages()[0])

    assert hit(api, pixel) == 200
    assert types_for(published(stores), "reader@example.com") == ["message.delivered", "message.opened"]
    feedback.apply()  # the Delivery, after the open
    assert published(stores) == []  # no second message.delivered

    message = message_of(stores, account, job["job_id"], "reader@example.com")
    # There is no `opened` status: the open marks a sent message delivered and is logged beside it.
    assert message.status.value == "delivered"
    statuses = [e["status"] for e in message.events]
    assert statuses.count("delivered") == 1 and statuses.count("opened") == 1
    assert stores.store.get_job(account.id, job["job_id"]).counts == {"delivered": 1}  # type: ignore[union-attr]
    stats = api.get("/api/v1/campaigns/late-news").body
    assert (stats["recipients"], stats["sent"], stats["delivered"], stats["opened"]) == (1, 1, 1, 1)
    assert stats["rates"]["delivery_rate"] == 1.0 and stats["rates"]["open_rate"] == 1.0
    v2 = api.get(f"/v2/accounts/{account.id}/messages/{message.id}").body
    assert (v2["status"], v2["open_count"]) == ("Delivered", 1)


# -- b. how long automatic suppressions last ----------------------------------------------------------


def ses_bounce(account: Account, message: Any) -> dict[str, Any]:
    """SES's permanent-bounce sample about one of our sent messages."""
    body = json.loads(load_event("ses_bounce_permanent.json")["Records"][0]["body"])
    body["mail"]["tags"].update(
        {"account_id": [account.id], "job_id": [message.job_id], "message_id": [message.id]}
    )
    body["mail"]["commonHeaders"]["from"] = [SENDER]
    body["mail"]["destination"] = [message.email]
    body["bounce"]["bouncedRecipients"][0]["emailAddress"] = message.email
    return body  # type: ignore[no-any-return]


def expiry_days(suppression: Suppression, before: float, after: float) -> float:
    """The suppression's lifetime in days, asserted to have started between `before` and `after`."""
    assert before <= suppression.created_at <= after
    lifetime = suppression.expires_at - suppression.created_at
    # expires_at is computed a moment before created_at is stamped: allow the time between them.
    return round(lifetime / DAY, 3)


@pytest.mark.parametrize(("configured", "days"), [(None, 30), ("7", 7)])
def test_a_hard_bounce_suppresses_for_bounce_suppression_days(
    api: ApiClient,
    feedback: Feedback,
    smtp_sink: SmtpSink,
    stores: Backends,
    account: Account,
    hook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
    configured: str | None,
    days: int,
) -> None:
    if configured is not None:
        monkeypatch.setenv("MAILSAGE_BOUNCE_SUPPRESSION_DAYS", configured)
    # Cold starts after the setting: the sender (a 550 at RCPT) and the events function (SES Bounce).
    worker = Worker(load_handler("sender"), stores)
    feedback.handler = load_handler("events")

    before = time.time()
    job = batch(api, ["bounce-7@example.com", "ok@example.com"])
    worker.drain()
    feedback.notifications = []  # the Delivery of ok@: superseded by the bounce below
    ok = message_of(stores, account, job["job_id"], "ok@example.com")
    feedback.apply([ses_bounce(account, ok)])
    after = time.time()

    assert message_of(stores, account, job["job_id"], "bounce-7@example.com").status.value == "bounced"
    assert message_of(stores, account, job["job_id"], "ok@example.com").status.value == "bounced"
    payloads = {
        p["data"]["recipient"]: p["data"] for p in published(stores) if p["type"] == "suppression.created"
    }
    for email in ("bounce-7@example.com", "ok@example.com"):
        [suppression] = suppressions_of(stores, account, email)
        assert suppression.domain is None  # every sender domain of the account
        assert suppression.reason.startswith("hard bounce")
        assert expiry_days(suppression, before, after) == days
        assert payloads[email]["expires_at"] == iso(suppression.expires_at)


@pytest.mark.parametrize(("configured", "days"), [(None, 3650), ("90", 90)])
def test_a_complaint_suppresses_for_complaint_suppression_days(
    api: ApiClient,
    worker: Worker,
    feedback: Feedback,
    stores: Backends,
    account: Account,
    hook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
    configured: str | None,
    days: int,
) -> None:
    # outcomes.SuppressionPolicy: a complaint suppresses far longer than a bounce (ten years by
    # default), an expiry like any other rather than none.
    if configured is not None:
        monkeypatch.setenv("MAILSAGE_COMPLAINT_SUPPRESSION_DAYS", configured)
    monkeypatch.setenv("MAILSAGE_BOUNCE_SUPPRESSION_DAYS", "5")  # not what a complaint uses
    feedback.handler = load_handler("events")  # the complaint is applied by the events function

    before = time.time()
    batch(api, ["complain-7@example.com"])
    worker.drain()
    feedback.apply()
    after = time.time()

    [suppression] = suppressions_of(stores, account, "complain-7@example.com")
    assert suppression.reason.startswith("complaint")
    assert expiry_days(suppression, before, after) == days
    [created] = [p["data"] for p in published(stores) if p["type"] == "suppression.created"]
    assert created["expires_at"] == iso(suppression.expires_at)


# -- c, d. v2 messages: tracking and List-Unsubscribe -------------------------------------------------


def create_v2(api: ApiClient, account: Account, emails: list[str], **fields: Any) -> list[str]:
    """POST a v2 message; the bare message ids, in recipient order."""
    reply = api.post(
        f"/v2/accounts/{account.id}/messages",
        {
            "from": {"email": SENDER, "name": "News"},
            "recipients": [{"email": e} for e in emails],
            "subject": "Hello",
            "html_content": HTML,
            "text_content": "Hello",
            **fields,
        },
    )
    assert reply.status == 202, reply.body
    assert [d["status"] for d in reply.body["data"]] == ["queued"] * len(emails)
    return [d["id"].strip("<>").partition("@")[0] for d in reply.body["data"]]


def received(smtp_sink: SmtpSink) -> dict[str, Any]:
    """The sink's messages by recipient."""
    return {str(m["To"]): m for m in map(read_eml, smtp_sink.messages())}


def html_of(message: Any) -> str:
    return message.get_body(("html",)).get_content()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("tracking", "pixel", "links"),
    [
        ({"open": True, "click": True}, True, True),
        ({"open": True}, True, False),
        ({"click": True}, False, True),
        ({"open": False, "click": False}, False, False),
        (None, False, False),
    ],
)
def test_v2_tracking_adds_the_pixel_and_rewrites_the_links_only_as_asked(
    api: ApiClient,
    worker: Worker,
    smtp_sink: SmtpSink,
    account: Account,
    tracking: dict[str, bool] | None,
    pixel: bool,
    links: bool,
) -> None:
    create_v2(
        api, account, ["reader@example.com"], **({"tracking": tracking} if tracking is not None else {})
    )
    worker.drain()
    html = html_of(received(smtp_sink)["reader@example.com"])
    assert bool(re.search(rf'<img src="{re.escape(PUBLIC_URL)}/t/o/[^"]+"', html)) is pixel
    assert bool(re.search(rf'href="{re.escape(PUBLIC_URL)}/t/c/[^"]+"', html)) is links
    assert (f'href="{LINK}"' in html) is not links  # the original link, as written, unless tracked


def test_v2_tracking_urls_count_the_open_and_the_click(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink, stores: Backends, account: Account, hook: Webhook
) -> None:
    [message_id] = create_v2(api, account, ["reader@example.com"], tracking={"open": True, "click": True})
    worker.drain()
    pixel, link, _ = links_in(smtp_sink.messages()[0])
    published(stores)
    assert hit(api, pixel) == 200
    click = api.get(urlsplit(link).path, key=None)
    assert click.status == 302 and click.headers["location"] == "https://example.com/a?x=1&y=2"
    payloads = published(stores)
    assert [(p["type"], p["data"]["id"]) for p in payloads] == [
        ("message.delivered", message_id),
        ("message.opened", message_id),
        ("message.clicked", message_id),
    ]
    v2 = api.get(f"/v2/accounts/{account.id}/messages/{message_id}").body
    assert (v2["status"], v2["open_count"], v2["click_count"]) == ("Delivered", 1, 1)


def test_a_v2_message_to_several_recipients_carries_one_click_unsubscribe_and_to_one_does_not(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink, stores: Backends, account: Account
) -> None:
    # domain/messages: "A message to several recipients is bulk mail; to one, transactional."
    create_v2(api, account, ["a@example.com", "b@example.com"])
    create_v2(api, account, ["solo@example.com"])
    worker.drain()
    mail = received(smtp_sink)
    assert sorted(mail) == ["a@example.com", "b@example.com", "solo@example.com"]
    urls = {}
    for email in ("a@example.com", "b@example.com"):
        assert mail[email]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        urls[email] = str(mail[email]["List-Unsubscribe"]).strip("<>")
        assert urls[email].startswith(f"{PUBLIC_URL}/u/")
    assert urls["a@example.com"] != urls["b@example.com"]  # each recipient's own signed link
    assert mail["solo@example.com"]["List-Unsubscribe"] is None
    assert mail["solo@example.com"]["List-Unsubscribe-Post"] is None

    # The one-click POST of a's link suppresses a, and only a.
    reply = api.post(
        urlsplit(urls["a@example.com"]).path,
        key=None,
        raw_body="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 200
    emails = ["a@example.com", "b@example.com", "solo@example.com"]
    assert stores.store.suppressed(account.id, emails, "acme-mail.com", time.time()) == {"a@example.com"}


@pytest.mark.parametrize("name", ["List-Unsubscribe", "list-unsubscribe"])
def test_the_callers_own_list_unsubscribe_wins_and_appears_once(
    api: ApiClient, worker: Worker, smtp_sink: SmtpSink, account: Account, name: str
) -> None:
    own = "<mailto:unsubscribe@acme-mail.com>"
    create_v2(api, account, ["a@example.com", "b@example.com"], headers={name: own})
    worker.drain()
    for message in received(smtp_sink).values():
        assert message.get_all("List-Unsubscribe") == [own]
        assert message["List-Unsubscribe-Post"] is None  # one-click is for MailSage's own URL


def test_feedback_id_is_set_by_mailsage_and_cannot_be_given(api: ApiClient, account: Account) -> None:
    reply = api.post(
        f"/v2/accounts/{account.id}/messages",
        {
            "from": {"email": SENDER},
            "recipients": [{"email": "a@example.com"}],
            "subject": "Hello",
            "text_content": "Hello",
            "headers": {"feedback-id": "x:y:z:w"},
        },
    )
    assert reply.status == 400
    assert "feedback-id is set by MailSage" in reply.body["message"]


# -- e. webhook payloads against AhaSend's webhooks.yaml ------------------------------------------------

WEBHOOKS_SPEC = ROOT / "tests" / "contract" / "specs" / "ahasend-webhooks.yaml"
SPEC_URI = "urn:ahasend:webhooks"


@lru_cache(maxsize=1)
def webhooks_spec() -> dict[str, Any]:
    return yaml.safe_load(WEBHOOKS_SPEC.read_text())  # type: ignore[no-any-return]


def payload_validator(event_type: str) -> jsonschema.Draft202012Validator:
    """The validator of the request body the contract gives for `event_type`'s webhook."""
    spec = webhooks_spec()
    assert event_type in spec["webhooks"], f"{event_type} is not a webhook of the contract"
    registry = Registry().with_resource(SPEC_URI, Resource.from_contents(spec, DRAFT202012))
    pointer = f"/webhooks/{event_type}/post/requestBody/content/application~1json/schema"
    return jsonschema.Draft202012Validator(
        {"$ref": f"{SPEC_URI}#{pointer}"}, registry=registry, format_checker=FORMATS
    )


def problems(payload: dict[str, Any]) -> list[str]:
    errors = payload_validator(payload["type"]).iter_errors(payload)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(payload)'}: {e.message}" for e in errors]


def test_webhook_payloads_validate_against_the_contracts_schemas(
    api: ApiClient,
    worker: Worker,
    feedback: Feedback,
    smtp_sink: SmtpSink,
    stores: Backends,
    account: Account,
    hook: Webhook,
) -> None:
    batch(api, ["reader@example.com", "bounce-8@example.com"], tracking={"open": True, "click": True})
    worker.drain()
    feedback.apply()  # reader's Delivery
    eml = next(p for p in smtp_sink.messages() if read_eml(p)["To"] == "reader@example.com")
    pixel, link, _ = links_in(eml)
    assert hit(api, pixel) == 200 and hit(api, link) == 302
    payloads = published(stores)

    wanted = {
        "message.delivered",
        "message.bounced",
        "message.opened",
        "message.clicked",
        "suppression.created",
    }
    assert wanted <= {p["type"] for p in payloads}
    for payload in payloads:
        if payload["type"].startswith("job."):  # MailSage's own v1 events: not in AhaSend's contract
            assert payload["type"] not in webhooks_spec()["webhooks"]
            continue
        assert problems(payload) == [], payload

    # The schemas do constrain: a payload missing what they require, or mistyped, fails.
    delivered = next(p for p in payloads if p["type"] == "message.delivered")
    broken = {**delivered, "data": {k: v for k, v in delivered["data"].items() if k != "recipient"}}
    assert any("'recipient' is a required property" in p for p in problems(broken))
    clicked = next(p for p in payloads if p["type"] == "message.clicked")
    assert problems({**clicked, "data": {**clicked["data"], "url": 1}}) != []
    created = next(p for p in payloads if p["type"] == "suppression.created")
    assert problems({**created, "data": {**created["data"], "expires_at": "soon"}}) != []

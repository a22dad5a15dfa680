"""MailSage v1 wire format of webhooks and their delivery log. Unknown request fields are rejected
(as everywhere on v1); event types, the URL and domains are checked by the domain, whose errors name
what is wrong."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from mailsage.api.model import Model
from mailsage.api.v1.models import ErrorEnvelope, Strict, iso
from mailsage.api.v1.models import responses as v1_responses
from mailsage.domain.models import EVENT_TYPES, Webhook, WebhookDelivery
from mailsage.domain.webhooks import QueuedTest

EVENTS_TEXT = "Event types: " + ", ".join(sorted(EVENT_TYPES)) + "."
SCOPE_TEXT = '"global": every event of the account; "scoped": only events of mail sent from one of `domains`.'

# -- requests ----------------------------------------------------------------------------------------


class WebhookIn(Strict):
    name: str = Field(min_length=1, max_length=255)
    url: str = Field(
        max_length=2048,
        description="http(s) URL. Loopback, private and link-local hosts are refused unless the"
        " deployment allows private webhook URLs (the embedded runtime does by default).",
    )
    events: list[str] = Field(min_length=1, max_length=64, description=EVENTS_TEXT)
    enabled: bool = True
    scope: Literal["global", "scoped"] = Field("global", description=SCOPE_TEXT)
    domains: list[str] | None = Field(
        None,
        max_length=100,
        description="Sender domains of a scoped webhook (at least one); ignored for a global one.",
    )


class WebhookPatch(Strict):
    """Every field is optional; a field left out (or null) keeps its value."""

    name: str | None = Field(None, min_length=1, max_length=255)
    url: str | None = Field(None, max_length=2048)
    events: list[str] | None = Field(
        None, max_length=64, description="Replaces the subscriptions. " + EVENTS_TEXT
    )
    enabled: bool | None = Field(
        None, description="true on a disabled webhook re-enables it and resets its consecutive-error count."
    )
    scope: Literal["global", "scoped"] | None = Field(None, description=SCOPE_TEXT)
    domains: list[str] | None = Field(
        None,
        max_length=100,
        description="Changing global to scoped needs a non-empty list in the same request; on a"
        " scoped webhook a list replaces the domains; a global webhook has none.",
    )


class WebhookTestIn(Strict):
    event_type: str | None = Field(
        None,
        description="The sample's event type (need not be subscribed); default: message.delivered"
        " if subscribed, else the first subscription. " + EVENTS_TEXT,
    )


# -- replies -----------------------------------------------------------------------------------------


class WebhookReply(Model):
    id: str
    name: str
    url: str
    enabled: bool
    events: list[str]
    scope: Literal["global", "scoped"]
    domains: list[str]
    created_at: str
    updated_at: str
    success_count: int
    error_count: int
    errors_since_last_success: int
    last_request_at: str | None
    disabled_reason: str | None = Field(description="Why it was disabled automatically, if it was.")
    signing: Literal["standard", "literal"] = Field(
        description='How the secret signs: "standard" (Standard Webhooks: the HMAC key is the'
        ' base64-decoded part after "whsec_"; every webhook created here) or "literal" (the key is'
        " the secret's UTF-8 bytes, as AhaSend signs: webhooks created on /v2, or before v1 signed"
        " the standard way)."
    )


class WebhookCreatedReply(WebhookReply):
    secret: str = Field(
        description='The signing secret, "whsec_" + base64 (Standard Webhooks): pass it as it is to'
        " a `standardwebhooks` library's verifier, or use the base64-decoded bytes after the prefix as"
        " the HMAC-SHA256 key. Shown in this reply only; it is never returned again."
    )


class WebhookList(Model):
    data: list[WebhookReply]
    next_cursor: str | None = Field(description="Pass as `after` for the next page; null on the last.")


class DeliveryAttempt(Model):
    time: str
    status_code: int | None = Field(description="The endpoint's HTTP status; null if none was received.")
    error: str | None
    duration_ms: float | None
    replay: bool = False


class DeliveryReply(Model):
    id: str = Field(description="The `webhook-id` header: the same for every attempt and replay.")
    event_type: str
    status: str = Field(description="pending, retrying, succeeded or failed")
    created_at: str
    updated_at: str
    attempts: list[DeliveryAttempt] = Field(description="Every attempt, oldest first.")
    next_attempt_at: str | None
    payload: Any = Field(description="The JSON body that was posted (signed).")


class DeliveryList(Model):
    data: list[DeliveryReply] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `after` for the next page; null on the last.")


class ReplayReply(Model):
    delivery_id: str
    webhook_id: str
    status: Literal["queued"] = "queued"


class TestEventReply(Model):
    delivery_id: str = Field(description="The `webhook-id` header; the delivery log shows the attempt.")
    webhook_id: str
    event_type: str
    status: Literal["queued"] = "queued"
    payload: Any = Field(description='The JSON body that will be posted (signed), with `"test": true`.')


# -- domain -> replies -------------------------------------------------------------------------------


def webhook_reply(w: Webhook) -> WebhookReply:
    return WebhookReply(**_fields(w))


def created_reply(w: Webhook) -> WebhookCreatedReply:
    return WebhookCreatedReply(**_fields(w), secret=w.secret)


def _fields(w: Webhook) -> dict[str, Any]:
    return {
        "id": w.id,
        "name": w.name,
        "url": w.url,
        "enabled": w.enabled,
        "events": sorted(w.events),
        "scope": w.scope,
        "domains": list(w.domains),
        "created_at": iso(w.created_at) or "",
        "updated_at": iso(w.updated_at) or "",
        "success_count": w.success_count,
        "error_count": w.error_count,
        "errors_since_last_success": w.errors_since_last_success,
        "last_request_at": iso(w.last_request_at),
        "disabled_reason": w.disabled_reason,
        "signing": w.signing.value,
    }


def test_event_reply(queued: QueuedTest) -> TestEventReply:
    return TestEventReply(
        delivery_id=queued.delivery_id,
        webhook_id=queued.webhook_id,
        event_type=queued.event_type,
        payload=json.loads(queued.payload),
    )


def delivery_reply(d: WebhookDelivery) -> DeliveryReply:
    try:
        payload: Any = json.loads(d.payload)
    except ValueError:
        payload = d.payload
    return DeliveryReply(
        id=d.id,
        event_type=d.event_type,
        status=d.status,
        created_at=iso(d.created_at) or "",
        updated_at=iso(d.updated_at) or "",
        attempts=[
            DeliveryAttempt(
                time=iso(float(a.get("time") or 0)) or "",
                status_code=a.get("status_code"),
                error=a.get("error"),
                duration_ms=a.get("duration_ms"),
                replay=bool(a.get("replay", False)),
            )
            for a in d.attempts
        ],
        next_attempt_at=iso(d.next_attempt_at),
        payload=payload,
    )


def responses(status: int, model: type[Model] | None, *errors: int) -> dict[int, Any]:
    """v1's `responses`, with 409 meaning a disabled webhook, and 503 (webhook deliveries not
    configured) where given."""
    out = v1_responses(status, model, *(e for e in errors if e != 503))
    if 409 in errors:
        out[409] = {**out[409], "description": "conflict: the webhook is disabled"}
    if 503 in errors:
        out[503] = {
            "description": "service_unavailable: webhook deliveries are not configured in this deployment",
            "content": {"application/json": {"model": ErrorEnvelope}},
        }
    return out

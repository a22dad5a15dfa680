"""`/v2/accounts/{account_id}/webhooks`: AhaSend's webhook endpoints (list, create, get, update,
delete), wire-compatible with the contract's `Webhook`, `CreatedWebhook`, `CreateWebhookRequest`,
`UpdateWebhookRequest` and `PaginatedWebhooksResponse`.

MailSage extensions (not in the AhaSend contract), the v1 delivery log and replay in v2's style
(`object`, `data` + `pagination`, `{"message"}` errors): `GET .../webhooks/{webhook_id}/deliveries`
(newest first, paged forwards with `limit` and `after`) and
`POST .../webhooks/{webhook_id}/deliveries/{delivery_id}/replay` (202; 404 for an unknown or another
account's webhook or delivery, 409 if the webhook is disabled, 503 without a webhook queue), and
`POST .../webhooks/{webhook_id}/test`, which queues a sample event (the same errors, and 400 for an
event type outside `FLAG_EVENTS`).

Signing: a webhook created here signs as AhaSend does (the HMAC key is the secret's literal UTF-8
bytes); one created on v1 keeps its Standard Webhooks signing when it is read or changed here.

A webhook's `on_*` flags are its subscriptions to the event types of `EVENT_FLAGS`. MailSage's own
job.* events have no flag: a webhook created here never gets them, and one created on v1 keeps its
job.* subscriptions, unseen here, across an update here.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import Field

from mailsage.api.dependencies import AccountId, Webhooks
from mailsage.api.errors import v2_envelope
from mailsage.api.model import Model
from mailsage.api.v1.webhook_models import delivery_reply as v1_delivery_reply
from mailsage.api.v2 import router
from mailsage.api.v2.ahasend_names import iso
from mailsage.api.v2.models import ErrorResponse, Lenient, PaginationInfo, SuccessResponse, responses
from mailsage.domain.models import EVENT_FLAGS, WebhookSigning
from mailsage.domain.models import Webhook as DomainWebhook
from mailsage.domain.models import WebhookDelivery as DomainDelivery
from mailsage.domain.webhooks import QueuedTest, WebhooksUnavailable

WEBHOOKS = "/accounts/<account_id>/webhooks"

# on_* flag -> the event type it subscribes to
FLAG_EVENTS: dict[str, str] = {flag: event for event, flag in EVENT_FLAGS.items() if flag is not None}

_SCOPED_TEXT = '"global": every event of the account; "scoped": only events of mail from one of `domains`.'


# -- requests ----------------------------------------------------------------------------------------


class CreateWebhookRequest(Lenient):
    name: str = Field(max_length=255)
    url: str = Field(max_length=2048)
    enabled: bool | None = True
    on_reception: bool | None = False
    on_delivered: bool | None = False
    on_transient_error: bool | None = False
    on_failed: bool | None = False
    on_bounced: bool | None = False
    on_suppressed: bool | None = False
    on_opened: bool | None = False
    on_clicked: bool | None = False
    on_suppression_created: bool | None = False
    on_dns_error: bool | None = False
    scope: Literal["global", "scoped"] = Field(description=_SCOPED_TEXT)
    domains: list[Annotated[str, Field(max_length=253)]] | None = Field(
        None, max_length=100, description="Required (non-empty) for scoped; ignored for global."
    )


class UpdateWebhookRequest(Lenient):
    """Omitted or null fields are unchanged."""

    name: str | None = Field(None, max_length=255)
    url: str | None = Field(None, max_length=2048)
    enabled: bool | None = None
    on_reception: bool | None = None
    on_delivered: bool | None = None
    on_transient_error: bool | None = None
    on_failed: bool | None = None
    on_bounced: bool | None = None
    on_suppressed: bool | None = None
    on_opened: bool | None = None
    on_clicked: bool | None = None
    on_suppression_created: bool | None = None
    on_dns_error: bool | None = None
    scope: Literal["global", "scoped"] | None = None
    domains: list[Annotated[str, Field(max_length=253)]] | None = Field(
        None,
        max_length=100,
        description="null: unchanged. Global -> scoped needs a non-empty array; on a scoped webhook an"
        " array replaces the domains ([] clears them); ignored when the result is global.",
    )


class WebhookTestRequest(Lenient):
    """MailSage extension: the body of `.../webhooks/{webhook_id}/test` (optional)."""

    event_type: str | None = Field(
        None,
        description="The sample's event type (need not be subscribed), one of "
        + ", ".join(sorted(FLAG_EVENTS.values()))
        + "; default: message.delivered if subscribed, else the first subscription.",
    )


# -- replies -----------------------------------------------------------------------------------------


class Webhook(Model):
    object: Literal["webhook"] = "webhook"
    id: str
    created_at: str
    updated_at: str
    name: str
    url: str
    enabled: bool
    on_reception: bool
    on_delivered: bool
    on_transient_error: bool
    on_failed: bool
    on_bounced: bool
    on_suppressed: bool
    on_opened: bool
    on_clicked: bool
    on_suppression_created: bool
    on_dns_error: bool
    scope: Literal["global", "scoped"]
    domains: list[str] = Field(description="Always present; [] for a global webhook.")
    success_count: int
    error_count: int
    errors_since_last_success: int
    last_request_at: str | None


class CreatedWebhook(Webhook):
    secret: str = Field(
        description="The signing secret; returned only when the webhook is created. The HMAC-SHA256"
        " key is its literal UTF-8 bytes, prefix included (not base64-decoded)."
    )


class PaginatedWebhooksResponse(Model):
    object: Literal["list"] = "list"
    data: list[Webhook]
    pagination: PaginationInfo


class WebhookDeliveryAttempt(Model):
    time: str
    status_code: int | None = Field(description="The endpoint's HTTP status; null if none was received.")
    error: str | None = Field(
        description="Why the attempt failed (timeout, refused, HTTP 500...); null on success."
    )
    duration_ms: float | None
    replay: bool = Field(description="true for an attempt made by a replay.")


class WebhookDelivery(Model):
    """One event sent to the endpoint (MailSage extension)."""

    object: Literal["webhook_delivery"] = "webhook_delivery"
    id: str = Field(description="The `webhook-id` header: the same for every attempt and replay.")
    webhook_id: str
    event_type: str
    status: str = Field(description="pending, retrying, succeeded or failed")
    created_at: str
    updated_at: str
    attempts: list[WebhookDeliveryAttempt] = Field(description="Every attempt, oldest first.")
    next_attempt_at: str | None = Field(description="When it is retried next; null unless retrying.")
    payload: Any = Field(description="The JSON body that was posted (signed).")


class PaginatedWebhookDeliveriesResponse(Model):
    object: Literal["list"] = "list"
    data: list[WebhookDelivery] = Field(description="Newest first.")
    pagination: PaginationInfo


class ReplayWebhookDeliveryResponse(Model):
    object: Literal["webhook_delivery_replay"] = "webhook_delivery_replay"
    delivery_id: str
    webhook_id: str
    status: Literal["queued"] = "queued"


class WebhookTestResponse(Model):
    """A test event on its way (MailSage extension)."""

    object: Literal["webhook_test_event"] = "webhook_test_event"
    delivery_id: str = Field(description="The `webhook-id` header; the delivery log shows the attempt.")
    webhook_id: str
    event_type: str
    status: Literal["queued"] = "queued"
    payload: Any = Field(description='The JSON body that will be posted (signed), with `"test": true`.')


def _fields(w: DomainWebhook) -> dict[str, Any]:
    events = set(w.events)
    return {
        "id": w.id,
        "created_at": iso(w.created_at),
        "updated_at": iso(w.updated_at),
        "name": w.name,
        "url": w.url,
        "enabled": w.enabled,
        **{flag: event in events for flag, event in FLAG_EVENTS.items()},
        "scope": w.scope,
        "domains": list(w.domains) if w.scope == "scoped" else [],
        "success_count": w.success_count,
        "error_count": w.error_count,
        "errors_since_last_success": w.errors_since_last_success,
        "last_request_at": iso(w.last_request_at) if w.last_request_at is not None else None,
    }


def webhook_reply(w: DomainWebhook) -> Webhook:
    return Webhook(**_fields(w))


def delivery_reply(d: DomainDelivery) -> WebhookDelivery:
    """v1's reply (the same fields, decoded the same way) plus what v2 shows besides."""
    return WebhookDelivery(webhook_id=d.webhook_id, **v1_delivery_reply(d).model_dump())


def _replay_responses(model: type[Model] = ReplayWebhookDeliveryResponse) -> dict[int, Any]:
    out = responses(202, model, 404, 409)
    out[409] = {
        **out[409],
        "description": "Conflict: the webhook is disabled (or an Idempotency-Key request still in progress)",
    }
    out[503] = {
        "description": "Webhook deliveries are not configured in this deployment (no webhook queue)",
        "content": {"application/json": {"model": ErrorResponse}},
    }
    return out


def _flags(body: Model) -> dict[str, bool]:
    """event type -> on/off, for each flag given (not null)."""
    values = body.model_dump()
    return {event: bool(values[flag]) for flag, event in FLAG_EVENTS.items() if values.get(flag) is not None}


# -- routes ------------------------------------------------------------------------------------------


@router.get(WEBHOOKS, responses=responses(200, PaginatedWebhooksResponse), summary="List webhooks")
def list_webhooks(
    account_id: str,
    enabled: Annotated[bool | None, Query(description="Only enabled (true) or disabled (false)")] = None,
    on_reception: Annotated[bool | None, Query()] = None,
    on_delivered: Annotated[bool | None, Query()] = None,
    on_transient_error: Annotated[bool | None, Query()] = None,
    on_failed: Annotated[bool | None, Query()] = None,
    on_bounced: Annotated[bool | None, Query()] = None,
    on_suppressed: Annotated[bool | None, Query()] = None,
    on_opened: Annotated[bool | None, Query()] = None,
    on_clicked: Annotated[bool | None, Query()] = None,
    on_suppression_created: Annotated[bool | None, Query()] = None,
    on_dns_error: Annotated[bool | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
    after: Annotated[str | None, Query(max_length=128)] = None,
    before: Annotated[str | None, Query(max_length=128)] = None,
    *,
    service: Webhooks,
    account: AccountId,
) -> PaginatedWebhooksResponse:
    given = {
        "on_reception": on_reception,
        "on_delivered": on_delivered,
        "on_transient_error": on_transient_error,
        "on_failed": on_failed,
        "on_bounced": on_bounced,
        "on_suppressed": on_suppressed,
        "on_opened": on_opened,
        "on_clicked": on_clicked,
        "on_suppression_created": on_suppression_created,
        "on_dns_error": on_dns_error,
    }
    subscribed = {FLAG_EVENTS[flag]: value for flag, value in given.items() if value is not None}
    page = service.list(account, limit, after, before=before, enabled=enabled, subscribed=subscribed)
    return PaginatedWebhooksResponse(
        data=[webhook_reply(w) for w in page.items],
        pagination=PaginationInfo(
            has_more=page.has_more, next_cursor=page.next_cursor, previous_cursor=page.previous_cursor
        ),
    )


@router.post(WEBHOOKS, responses=responses(201, CreatedWebhook, 409, 422), summary="Create a webhook")
def create_webhook(
    account_id: str, body: CreateWebhookRequest, service: Webhooks, account: AccountId
) -> Response[CreatedWebhook]:
    webhook = service.create(
        account,
        body.name,
        body.url,
        [event for event, on in _flags(body).items() if on],
        enabled=True if body.enabled is None else body.enabled,
        scope=body.scope,
        domains=body.domains,
        signing=WebhookSigning.LITERAL,
    )
    reply = CreatedWebhook(**_fields(webhook), secret=webhook.secret)
    return Response(201, content_types.APPLICATION_JSON, reply)


@router.get(f"{WEBHOOKS}/<webhook_id>", responses=responses(200, Webhook, 404), summary="Get a webhook")
def get_webhook(account_id: str, webhook_id: str, service: Webhooks, account: AccountId) -> Webhook:
    return webhook_reply(service.get(account, webhook_id))


@router.put(f"{WEBHOOKS}/<webhook_id>", responses=responses(200, Webhook, 404), summary="Change a webhook")
def update_webhook(
    account_id: str, webhook_id: str, body: UpdateWebhookRequest, service: Webhooks, account: AccountId
) -> Webhook:
    webhook = service.update(
        account,
        webhook_id,
        name=body.name,
        url=body.url,
        enabled=body.enabled,
        subscribe=_flags(body),
        scope=body.scope,
        domains=body.domains,
    )
    return webhook_reply(webhook)


@router.delete(
    f"{WEBHOOKS}/<webhook_id>", responses=responses(200, SuccessResponse, 404), summary="Delete a webhook"
)
def delete_webhook(
    account_id: str, webhook_id: str, service: Webhooks, account: AccountId
) -> SuccessResponse:
    service.delete(account, webhook_id)
    return SuccessResponse(message=f"webhook {webhook_id} deleted")


# -- MailSage extensions: the delivery log and replay ------------------------------------------


@router.get(
    f"{WEBHOOKS}/<webhook_id>/deliveries",
    responses=responses(200, PaginatedWebhookDeliveriesResponse, 404),
    summary="A webhook's delivery log (MailSage extension)",
    description="What was sent to the endpoint, newest first: each event with every attempt"
    " (status code, error, duration) and the next retry. Pages forwards: pass"
    " `pagination.next_cursor` as `after`. Entries expire after the log's retention.",
)
def list_deliveries(
    account_id: str,
    webhook_id: str,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
    after: Annotated[str | None, Query(max_length=128)] = None,
    *,
    service: Webhooks,
    account: AccountId,
) -> PaginatedWebhookDeliveriesResponse:
    page = service.deliveries(account, webhook_id, limit, after)
    return PaginatedWebhookDeliveriesResponse(
        data=[delivery_reply(d) for d in page.items],
        pagination=PaginationInfo(has_more=page.has_more, next_cursor=page.next_cursor),
    )


@router.post(
    f"{WEBHOOKS}/<webhook_id>/deliveries/<delivery_id>/replay",
    responses=_replay_responses(),
    summary="Send a delivery again (MailSage extension)",
    description="Queues the logged event for one more attempt, with the same `webhook-id` and"
    " payload (receivers can recognise it). 409 if the webhook is disabled; 503 if the"
    " deployment has no webhook queue.",
)
def replay_delivery(
    account_id: str, webhook_id: str, delivery_id: str, service: Webhooks, account: AccountId
) -> Response[Any]:
    # Response[Any]: a ReplayWebhookDeliveryResponse or (503) an ErrorResponse, which the
    # exception handlers cannot give (that status is not one of a domain error).
    try:
        delivery = service.replay(account, webhook_id, delivery_id)
    except WebhooksUnavailable as exc:
        return v2_envelope(503, exc.message)
    reply = ReplayWebhookDeliveryResponse(delivery_id=delivery.id, webhook_id=delivery.webhook_id)
    return Response(202, content_types.APPLICATION_JSON, reply)


@router.post(
    f"{WEBHOOKS}/<webhook_id>/test",
    responses=_replay_responses(WebhookTestResponse),
    summary="Send a test event (MailSage extension)",
    description='Queues a sample event (made-up values, `"test": true` in the payload) for the'
    " webhook, signed and logged like a real one: one attempt, not retried, and not counted in the"
    " webhook's statistics. The body is optional. 409 if the webhook is disabled; 503 if the"
    " deployment has no webhook queue.",
)
def send_test_event(
    account_id: str,
    webhook_id: str,
    service: Webhooks,
    account: AccountId,
    body: WebhookTestRequest | None = None,
) -> Response[Any]:
    # Response[Any]: a WebhookTestResponse or (503) an ErrorResponse, as replay_delivery.
    try:
        queued = service.send_test(
            account, webhook_id, body.event_type if body else None, allowed=frozenset(FLAG_EVENTS.values())
        )
    except WebhooksUnavailable as exc:
        return v2_envelope(503, exc.message)
    return Response(202, content_types.APPLICATION_JSON, _test_reply(queued))


def _test_reply(queued: QueuedTest) -> WebhookTestResponse:
    return WebhookTestResponse(
        delivery_id=queued.delivery_id,
        webhook_id=queued.webhook_id,
        event_type=queued.event_type,
        payload=json.loads(queued.payload),
    )

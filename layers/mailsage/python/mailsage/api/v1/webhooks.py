"""`/api/v1/webhooks`: CRUD of an account's webhook endpoints, their delivery log, replaying a
delivery, and sending a test event.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from mailsage.api.dependencies import AccountId, Webhooks
from mailsage.api.errors import envelope
from mailsage.api.v1.webhook_models import (
    DeliveryList,
    ReplayReply,
    TestEventReply,
    WebhookCreatedReply,
    WebhookIn,
    WebhookList,
    WebhookPatch,
    WebhookReply,
    WebhookTestIn,
    created_reply,
    delivery_reply,
    responses,
    test_event_reply,
    webhook_reply,
)
from mailsage.domain.webhooks import WebhooksUnavailable

router = APIGatewayRouter()


@router.post(
    "",
    responses=responses(201, WebhookCreatedReply, 400),
    summary="Create a webhook",
    description="Registers an endpoint for the given event types. The reply carries the signing"
    " `secret`, which is never shown again.",
)
def create_webhook(
    body: WebhookIn, service: Webhooks, account_id: AccountId
) -> Response[WebhookCreatedReply]:
    webhook = service.create(
        account_id,
        body.name,
        body.url,
        body.events,
        enabled=body.enabled,
        scope=body.scope,
        domains=body.domains,
    )
    return Response(201, content_types.APPLICATION_JSON, created_reply(webhook))


@router.get("", responses=responses(200, WebhookList, 400), summary="List webhooks")
def list_webhooks(
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    after: Annotated[str | None, Query(max_length=128)] = None,
    *,
    service: Webhooks,
    account_id: AccountId,
) -> WebhookList:
    page = service.list(account_id, limit, after)
    return WebhookList(data=[webhook_reply(w) for w in page.items], next_cursor=page.next_cursor)


@router.get("/<webhook_id>", responses=responses(200, WebhookReply, 404), summary="Get a webhook")
def get_webhook(webhook_id: str, service: Webhooks, account_id: AccountId) -> WebhookReply:
    return webhook_reply(service.get(account_id, webhook_id))


@router.patch(
    "/<webhook_id>",
    responses=responses(200, WebhookReply, 400, 404),
    summary="Change a webhook",
    description="Changes the fields given; the others (and the secret) stay as they are.",
)
def update_webhook(
    webhook_id: str, body: WebhookPatch, service: Webhooks, account_id: AccountId
) -> WebhookReply:
    webhook = service.update(
        account_id,
        webhook_id,
        name=body.name,
        url=body.url,
        enabled=body.enabled,
        events=body.events,
        scope=body.scope,
        domains=body.domains,
    )
    return webhook_reply(webhook)


@router.delete("/<webhook_id>", responses=responses(204, None, 404), summary="Delete a webhook")
def delete_webhook(webhook_id: str, service: Webhooks, account_id: AccountId) -> Response[None]:
    service.delete(account_id, webhook_id)
    return Response(204)


@router.get(
    "/<webhook_id>/deliveries",
    responses=responses(200, DeliveryList, 400, 404),
    summary="A webhook's delivery log",
    description="What was sent to the endpoint, newest first: each event with every attempt"
    " (status code, error, duration) and the next retry. Entries expire after the log's retention.",
)
def list_deliveries(
    webhook_id: str,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    after: Annotated[str | None, Query(max_length=128)] = None,
    *,
    service: Webhooks,
    account_id: AccountId,
) -> DeliveryList:
    page = service.deliveries(account_id, webhook_id, limit, after)
    return DeliveryList(data=[delivery_reply(d) for d in page.items], next_cursor=page.next_cursor)


@router.post(
    "/<webhook_id>/deliveries/<delivery_id>/replay",
    responses=responses(202, ReplayReply, 404, 409, 503),
    summary="Send a delivery again",
    description="Queues the logged event for one more attempt, with the same `webhook-id` and"
    " payload (receivers can recognise it). 409 if the webhook is disabled.",
)
def replay_delivery(
    webhook_id: str, delivery_id: str, service: Webhooks, account_id: AccountId
) -> Response[Any]:
    # Response[Any]: the reply is a ReplayReply or (503) the error envelope, which the
    # exception handlers cannot give (that status is not one of a domain error).
    try:
        delivery = service.replay(account_id, webhook_id, delivery_id)
    except WebhooksUnavailable as exc:
        return envelope(503, exc.code, exc.message)
    reply = ReplayReply(delivery_id=delivery.id, webhook_id=delivery.webhook_id)
    return Response(202, content_types.APPLICATION_JSON, reply)


@router.post(
    "/<webhook_id>/test",
    responses=responses(202, TestEventReply, 400, 404, 409, 503),
    summary="Send a test event",
    description='Queues a sample event (made-up values, `"test": true` in the payload) for the'
    " webhook, signed and logged like a real one: one attempt, not retried, and not counted in the"
    " webhook's statistics. The body is optional. 409 if the webhook is disabled.",
)
def send_test_event(
    webhook_id: str, service: Webhooks, account_id: AccountId, body: WebhookTestIn | None = None
) -> Response[Any]:
    # Response[Any]: a TestEventReply or (503) the error envelope, as replay_delivery.
    try:
        queued = service.send_test(account_id, webhook_id, body.event_type if body else None)
    except WebhooksUnavailable as exc:
        return envelope(503, exc.code, exc.message)
    return Response(202, content_types.APPLICATION_JSON, test_event_reply(queued))

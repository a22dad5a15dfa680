"""The v2 operations (`/v2/accounts/{account_id}`) as `Call`s, shared by the sync and async clients."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from mailsage_client._core import Call, call, compact, rfc3339, segment
from mailsage_client._pagination import Page, PageCall, v2_page
from mailsage_client.models import ReplayReply
from mailsage_client.models_v2 import (
    WEBHOOK_EVENTS,
    Address,
    Attachment,
    CreatedWebhook,
    CreateMessageResponse,
    CreateSuppressionResponse,
    Message,
    MessageSummary,
    SuccessResponse,
    Suppression,
    V2Recipient,
    V2TestEventReply,
    V2Webhook,
    V2WebhookDelivery,
)

When = datetime | str


def _plain(value: Any) -> Any:
    """A request value as JSON: models dumped without their unset fields."""
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True, by_alias=True)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return rfc3339(value)
    return value


def address(value: Address | V2Recipient | Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"email": value}
    return dict(_plain(value))


def recipient(value: V2Recipient | Mapping[str, Any] | str) -> dict[str, Any]:
    return address(value)  # the same rule: an address alone, or the object


class Paths:
    """Paths of one account's v2 operations."""

    def __init__(self, account_id: str) -> None:
        self.base = f"/v2/accounts/{segment(account_id)}"

    # -- messages ---------------------------------------------------------------------------------

    def create_message(
        self, body: dict[str, Any], idempotency_key: str | None
    ) -> Call[CreateMessageResponse]:
        return call(
            "POST",
            f"{self.base}/messages",
            CreateMessageResponse.model_validate,
            json={k: _plain(v) for k, v in body.items() if v is not None},
            idempotency_key=idempotency_key,
        )

    def list_messages(self, filters: Mapping[str, Any], limit: int | None) -> PageCall[MessageSummary]:
        def page(after: str | None) -> Call[Page[MessageSummary]]:
            params = {**filters, "limit": limit, "after": after}
            return call("GET", f"{self.base}/messages", v2_page(MessageSummary), params=params)

        return page

    def get_message(self, message_id: str) -> Call[Message]:
        return call("GET", f"{self.base}/messages/{segment(message_id)}", Message.model_validate)

    def cancel_message(self, message_id: str) -> Call[SuccessResponse]:
        path = f"{self.base}/messages/{segment(message_id)}/cancel"
        return call("DELETE", path, SuccessResponse.model_validate)

    # -- suppressions -----------------------------------------------------------------------------

    def create_suppression(
        self,
        email: str,
        expires_at: When,
        domain: str | None,
        reason: str | None,
        idempotency_key: str | None,
    ) -> Call[CreateSuppressionResponse]:
        body = compact(
            {"email": email, "expires_at": rfc3339(expires_at), "domain": domain, "reason": reason}
        )
        return call(
            "POST",
            f"{self.base}/suppressions",
            CreateSuppressionResponse.model_validate,
            json=body,
            idempotency_key=idempotency_key,
        )

    def list_suppressions(self, filters: Mapping[str, Any], limit: int | None) -> PageCall[Suppression]:
        def page(after: str | None) -> Call[Page[Suppression]]:
            params = {**filters, "limit": limit, "after": after}
            return call("GET", f"{self.base}/suppressions", v2_page(Suppression), params=params)

        return page

    def delete_suppression(self, email: str, domain: str | None) -> Call[SuccessResponse]:
        params = {"email": email, "domain": domain}
        return call("DELETE", f"{self.base}/suppressions", SuccessResponse.model_validate, params=params)

    def delete_all_suppressions(self, domain: str | None) -> Call[SuccessResponse]:
        path = f"{self.base}/suppressions/all"
        return call("DELETE", path, SuccessResponse.model_validate, params={"domain": domain})

    # -- webhooks ---------------------------------------------------------------------------------

    def create_webhook(self, body: dict[str, Any], idempotency_key: str | None) -> Call[CreatedWebhook]:
        return call(
            "POST",
            f"{self.base}/webhooks",
            CreatedWebhook.model_validate,
            json=body,
            idempotency_key=idempotency_key,
        )

    def get_webhook(self, webhook_id: str) -> Call[V2Webhook]:
        return call("GET", f"{self.base}/webhooks/{segment(webhook_id)}", V2Webhook.model_validate)

    def list_webhooks(self, filters: Mapping[str, Any], limit: int | None) -> PageCall[V2Webhook]:
        def page(after: str | None) -> Call[Page[V2Webhook]]:
            params = {**filters, "limit": limit, "after": after}
            return call("GET", f"{self.base}/webhooks", v2_page(V2Webhook), params=params)

        return page

    def update_webhook(self, webhook_id: str, body: dict[str, Any]) -> Call[V2Webhook]:
        path = f"{self.base}/webhooks/{segment(webhook_id)}"
        return call("PUT", path, V2Webhook.model_validate, json=body)

    def delete_webhook(self, webhook_id: str) -> Call[SuccessResponse]:
        path = f"{self.base}/webhooks/{segment(webhook_id)}"
        return call("DELETE", path, SuccessResponse.model_validate)

    def list_deliveries(self, webhook_id: str, limit: int | None) -> PageCall[V2WebhookDelivery]:
        def page(after: str | None) -> Call[Page[V2WebhookDelivery]]:
            path = f"{self.base}/webhooks/{segment(webhook_id)}/deliveries"
            return call("GET", path, v2_page(V2WebhookDelivery), params={"limit": limit, "after": after})

        return page

    def replay_delivery(
        self, webhook_id: str, delivery_id: str, idempotency_key: str | None
    ) -> Call[ReplayReply]:
        path = f"{self.base}/webhooks/{segment(webhook_id)}/deliveries/{segment(delivery_id)}/replay"
        return call("POST", path, ReplayReply.model_validate, idempotency_key=idempotency_key)

    def test_webhook(
        self, webhook_id: str, event_type: str | None, idempotency_key: str | None
    ) -> Call[V2TestEventReply]:
        return call(
            "POST",
            f"{self.base}/webhooks/{segment(webhook_id)}/test",
            V2TestEventReply.model_validate,
            json=compact({"event_type": event_type}),
            idempotency_key=idempotency_key,
        )


def webhook_body(
    *,
    name: str | None,
    url: str | None,
    events: Iterable[str] | None,
    enabled: bool | None,
    scope: str | None,
    domains: Iterable[str] | None,
) -> dict[str, Any]:
    """A v2 webhook's fields. `events` (names from `WEBHOOK_EVENTS`, with or without `on_`) sets
    every `on_*` flag: the ones named on, the others off; None leaves them as they are."""
    body: dict[str, Any] = {"name": name, "url": url, "enabled": enabled, "scope": scope}
    body["domains"] = None if domains is None else list(domains)
    if events is not None:
        wanted = {e.removeprefix("on_") for e in events}
        unknown = wanted - set(WEBHOOK_EVENTS)
        if unknown:
            raise ValueError(
                f"unknown v2 webhook events {sorted(unknown)}; known: {', '.join(WEBHOOK_EVENTS)}"
            )
        body |= {f"on_{e}": e in wanted for e in WEBHOOK_EVENTS}
    return compact(body)


def message_body(
    from_: Address | Mapping[str, Any] | str,
    recipients: Iterable[V2Recipient | Mapping[str, Any] | str],
    subject: str,
    *,
    reply_to: Address | Mapping[str, Any] | str | None = None,
    attachments: Iterable[Attachment | Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    substitutions: Mapping[str, Any] | None = None,
    tags: Iterable[str] | None = None,
    schedule: Mapping[str, When] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A create-message body; `extra` holds the other fields as they are (`text_content`, ...)."""
    fields = {
        "reply_to": None if reply_to is None else address(reply_to),
        "attachments": None if attachments is None else list(attachments),
        "headers": None if headers is None else dict(headers),
        "substitutions": None if substitutions is None else dict(substitutions),
        "tags": None if tags is None else list(tags),
        "schedule": None if schedule is None else {k: rfc3339(t) for k, t in schedule.items()},
        **(extra or {}),
    }
    return {
        "from": address(from_),
        "recipients": [recipient(r) for r in recipients],
        "subject": subject,
        **{k: v for k, v in fields.items() if v is not None},
    }


def message_filters(
    *,
    status: str | Iterable[str] | None = None,
    sender: str | None = None,
    recipient: str | None = None,
    subject: str | None = None,
    message_id_header: str | None = None,
    tags: Iterable[str] | None = None,
    from_time: When | None = None,
    to_time: When | None = None,
) -> dict[str, Any]:
    """The query of a message search (lists become comma-separated)."""
    return {
        "status": status if status is None or isinstance(status, str) else list(status),
        "sender": sender,
        "recipient": recipient,
        "subject": subject,
        "message_id_header": message_id_header,
        "tags": None if tags is None else list(tags),
        **time_filters(from_time, to_time),
    }


def time_filters(from_time: When | None, to_time: When | None) -> dict[str, Any]:
    return {
        "from_time": None if from_time is None else rfc3339(from_time),
        "to_time": None if to_time is None else rfc3339(to_time),
    }

"""The v1 operations (`/api/v1`) as `Call`s: request bodies and reply parsing, shared by the sync and
async clients."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mailsage_client._core import Call, call, compact, segment
from mailsage_client._pagination import Page, PageCall, v1_page
from mailsage_client.models import (
    BatchReply,
    Campaign,
    Delivery,
    Job,
    Preview,
    Recipient,
    ReplayReply,
    SendReply,
    Template,
    TestEventReply,
    Webhook,
    WebhookCreated,
)

V1 = "/api/v1"


def content(
    *,
    subject: str | None = None,
    text: str | None = None,
    html: str | None = None,
    template_id: str | None = None,
    from_: str | None = None,
    reply_to: str | None = None,
    campaign_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The content fields shared by send and batch (`text` is the API's `body`); `extra` passes
    other request fields as they are (`tracking`, `list_unsubscribe`, `provider`)."""
    fields = {
        "subject": subject,
        "body": text,
        "html": html,
        "template_id": template_id,
        "from": from_,
        "reply_to": reply_to,
        "campaign_id": campaign_id,
    }
    return compact({**fields, **(extra or {})})


def send(
    to: str,
    *,
    name: str | None = None,
    variables: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    **content_fields: Any,
) -> Call[SendReply]:
    recipient = compact({"email": to, "name": name, "variables": dict(variables or {})})
    body = {"recipient": recipient, **content(**content_fields)}
    return call(
        "POST", f"{V1}/emails/send", SendReply.model_validate, json=body, idempotency_key=idempotency_key
    )


def recipient_body(recipient: Recipient | Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(recipient, str):
        recipient = Recipient(email=recipient)
    elif not isinstance(recipient, Recipient):
        recipient = Recipient.model_validate(recipient)
    return recipient.model_dump(exclude_none=True)


def batch(
    recipients: Iterable[Recipient | Mapping[str, Any] | str],
    *,
    validation: str = "lenient",
    idempotency_key: str | None = None,
    **content_fields: Any,
) -> Call[BatchReply]:
    body = {
        "recipients": [recipient_body(r) for r in recipients],
        "validation": validation,
        **content(**content_fields),
    }
    return call(
        "POST", f"{V1}/emails/batch", BatchReply.model_validate, json=body, idempotency_key=idempotency_key
    )


def get_job(job_id: str) -> Call[Job]:
    return call("GET", f"{V1}/emails/jobs/{segment(job_id)}", Job.model_validate)


def control_job(job_id: str, action: str) -> Call[Job]:
    return call(
        "POST", f"{V1}/emails/jobs/{segment(job_id)}/control", Job.model_validate, json={"action": action}
    )


# -- templates -----------------------------------------------------------------------------------


def template_body(name: str, subject: str, html: str | None, text: str | None) -> dict[str, Any]:
    return compact({"name": name, "subject": subject, "html": html, "text": text})


def create_template(body: dict[str, Any], idempotency_key: str | None) -> Call[Template]:
    return call(
        "POST", f"{V1}/templates", Template.model_validate, json=body, idempotency_key=idempotency_key
    )


def get_template(template_id: str) -> Call[Template]:
    return call("GET", f"{V1}/templates/{segment(template_id)}", Template.model_validate)


def list_templates(limit: int | None) -> PageCall[Template]:
    def page(after: str | None) -> Call[Page[Template]]:
        return call("GET", f"{V1}/templates", v1_page(Template), params={"limit": limit, "after": after})

    return page


def replace_template(template_id: str, body: dict[str, Any]) -> Call[Template]:
    return call("PUT", f"{V1}/templates/{segment(template_id)}", Template.model_validate, json=body)


def delete_template(template_id: str) -> Call[None]:
    return call("DELETE", f"{V1}/templates/{segment(template_id)}", _nothing)


def preview_template(template_id: str, variables: Mapping[str, Any] | None) -> Call[Preview]:
    return call(
        "POST",
        f"{V1}/templates/{segment(template_id)}/preview",
        Preview.model_validate,
        json={"variables": dict(variables or {})},
    )


# -- webhooks ------------------------------------------------------------------------------------


def webhook_body(
    *,
    name: str | None,
    url: str | None,
    events: Iterable[str] | None,
    enabled: bool | None,
    scope: str | None,
    domains: Iterable[str] | None,
) -> dict[str, Any]:
    """A webhook's fields; the ones left None are left out (on an update: kept as they are)."""
    return compact(
        {
            "name": name,
            "url": url,
            "events": None if events is None else list(events),
            "enabled": enabled,
            "scope": scope,
            "domains": None if domains is None else list(domains),
        }
    )


def create_webhook(body: dict[str, Any], idempotency_key: str | None) -> Call[WebhookCreated]:
    return call(
        "POST", f"{V1}/webhooks", WebhookCreated.model_validate, json=body, idempotency_key=idempotency_key
    )


def get_webhook(webhook_id: str) -> Call[Webhook]:
    return call("GET", f"{V1}/webhooks/{segment(webhook_id)}", Webhook.model_validate)


def list_webhooks(limit: int | None) -> PageCall[Webhook]:
    def page(after: str | None) -> Call[Page[Webhook]]:
        return call("GET", f"{V1}/webhooks", v1_page(Webhook), params={"limit": limit, "after": after})

    return page


def update_webhook(webhook_id: str, body: dict[str, Any]) -> Call[Webhook]:
    return call("PATCH", f"{V1}/webhooks/{segment(webhook_id)}", Webhook.model_validate, json=body)


def delete_webhook(webhook_id: str) -> Call[None]:
    return call("DELETE", f"{V1}/webhooks/{segment(webhook_id)}", _nothing)


def list_deliveries(webhook_id: str, limit: int | None) -> PageCall[Delivery]:
    def page(after: str | None) -> Call[Page[Delivery]]:
        path = f"{V1}/webhooks/{segment(webhook_id)}/deliveries"
        return call("GET", path, v1_page(Delivery), params={"limit": limit, "after": after})

    return page


def replay_delivery(webhook_id: str, delivery_id: str, idempotency_key: str | None) -> Call[ReplayReply]:
    path = f"{V1}/webhooks/{segment(webhook_id)}/deliveries/{segment(delivery_id)}/replay"
    return call("POST", path, ReplayReply.model_validate, idempotency_key=idempotency_key)


def test_webhook(
    webhook_id: str, event_type: str | None, idempotency_key: str | None
) -> Call[TestEventReply]:
    return call(
        "POST",
        f"{V1}/webhooks/{segment(webhook_id)}/test",
        TestEventReply.model_validate,
        json=compact({"event_type": event_type}),
        idempotency_key=idempotency_key,
    )


def get_campaign(campaign_id: str) -> Call[Campaign]:
    return call("GET", f"{V1}/campaigns/{segment(campaign_id)}", Campaign.model_validate)


def _nothing(_: Any) -> None:
    return None


def ping() -> Call[bool]:
    return call("GET", "/v2/ping", lambda _: True)

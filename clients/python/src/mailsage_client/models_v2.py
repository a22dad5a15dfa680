"""Requests and replies of the AhaSend-compatible v2 API (`/v2/accounts/{account_id}/...`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mailsage_client.models import ApiModel, Delivery

# -- requests: the shapes a create accepts (plain dicts of the same shape work too) ---------------


class Address(ApiModel):
    email: str
    name: str | None = None


class V2Recipient(ApiModel):
    email: str
    name: str | None = None
    substitutions: dict[str, Any] | None = None


class Attachment(ApiModel):
    data: str
    content_type: str
    file_name: str
    base64: bool | None = None
    content_id: str | None = None
    content_disposition: str | None = None


# -- replies ----------------------------------------------------------------------------------------


class RecipientReply(ApiModel):
    email: str
    name: str = ""
    substitutions: dict[str, Any] | None = None


class ScheduleReply(ApiModel):
    first_attempt: str | None = None
    expires: str | None = None


class CreatedMessage(ApiModel):
    """One recipient's outcome: `id` is the Message-ID (`<uuid@host>`), None when `status` is `error`."""

    id: str | None = None
    recipient: RecipientReply
    status: str
    error: str | None = None
    schedule: ScheduleReply | None = None


class CreateMessageResponse(ApiModel):
    data: list[CreatedMessage]


class DeliveryEvent(ApiModel):
    time: str
    log: str
    status: str


class MessageSummary(ApiModel):
    id: str | None = None
    message_id: str
    created_at: str
    updated_at: str
    sent_at: str | None = None
    delivered_at: str | None = None
    retain_until: str
    bounce_classification: str = ""
    delivery_attempts: list[DeliveryEvent] = Field(default_factory=list)
    subject: str
    tags: list[str] = Field(default_factory=list)
    sender: str
    recipient: str
    status: str
    num_attempts: int = 0
    click_count: int = 0
    open_count: int = 0
    domain_id: str
    account_id: str
    direction: str | None = None


class MessagePart(ApiModel):
    content_type: str
    content: str


class MessageAttachment(ApiModel):
    filename: str
    content: str
    content_type: str
    content_id: str


class MessageContentParsed(ApiModel):
    parts: list[MessagePart]
    attachments: list[MessageAttachment]
    headers: dict[str, Any]


class Message(MessageSummary):
    """A message with its content (left out once retention removed it)."""

    content: str | None = None
    content_parsed: MessageContentParsed | None = None


class SuccessResponse(ApiModel):
    message: str


class Suppression(ApiModel):
    id: str
    created_at: str
    email: str
    domain: str = ""
    reason: str = ""
    expires_at: str


class CreateSuppressionResponse(ApiModel):
    data: list[Suppression]


class V2Webhook(ApiModel):
    id: str
    created_at: str
    updated_at: str
    name: str
    url: str
    enabled: bool
    on_reception: bool = False
    on_delivered: bool = False
    on_transient_error: bool = False
    on_failed: bool = False
    on_bounced: bool = False
    on_suppressed: bool = False
    on_opened: bool = False
    on_clicked: bool = False
    on_suppression_created: bool = False
    on_dns_error: bool = False
    scope: str
    domains: list[str] = Field(default_factory=list)
    success_count: int = 0
    error_count: int = 0
    errors_since_last_success: int = 0
    last_request_at: str | None = None


class CreatedWebhook(V2Webhook):
    """A new webhook: the only reply that shows its signing `secret`."""

    secret: str


class V2WebhookDelivery(Delivery):
    """One event sent to a webhook, with every attempt (a MailSage extension of v2)."""

    webhook_id: str


class V2TestEventReply(ApiModel):
    delivery_id: str
    webhook_id: str
    event_type: str
    payload: Any = None
    status: str | None = None


# The v2 event flags (`on_<event>`), by the event names `webhooks.create(events=...)` takes.
WEBHOOK_EVENTS = (
    "reception",
    "delivered",
    "transient_error",
    "failed",
    "bounced",
    "suppressed",
    "opened",
    "clicked",
    "suppression_created",
    "dns_error",
)

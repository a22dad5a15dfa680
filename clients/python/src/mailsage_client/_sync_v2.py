"""The v2 resources of the synchronous client: `client.account(id).messages`, `.suppressions`,
`.webhooks`. Each method builds its `Call` (`_calls_v2.py`) and runs it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from mailsage_client import _calls_v2 as v2
from mailsage_client._calls_v2 import When
from mailsage_client._core import Call
from mailsage_client._pagination import Paginator
from mailsage_client._sync_v1 import Runner
from mailsage_client.models import ReplayReply
from mailsage_client.models_v2 import (
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


class Messages(Runner):
    def __init__(self, run: Callable[[Call[Any]], Any], paths: v2.Paths) -> None:
        super().__init__(run)
        self._paths = paths

    def create(
        self,
        *,
        from_: Address | Mapping[str, Any] | str,
        recipients: Iterable[V2Recipient | Mapping[str, Any] | str],
        subject: str,
        text_content: str | None = None,
        html_content: str | None = None,
        reply_to: Address | Mapping[str, Any] | str | None = None,
        attachments: Iterable[Attachment | Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        substitutions: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        schedule: Mapping[str, When] | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> CreateMessageResponse:
        """One message per recipient. `extra` passes other request fields as they are
        (`sandbox`, `sandbox_result`, `tracking`, `retention`, `amp_content`)."""
        body = v2.message_body(
            from_,
            recipients,
            subject,
            reply_to=reply_to,
            attachments=attachments,
            headers=headers,
            substitutions=substitutions,
            tags=tags,
            schedule=schedule,
            extra={"text_content": text_content, "html_content": html_content, **extra},
        )
        return self._call(self._paths.create_message(body, idempotency_key))

    def list(
        self,
        *,
        status: str | Iterable[str] | None = None,
        sender: str | None = None,
        recipient: str | None = None,
        subject: str | None = None,
        message_id_header: str | None = None,
        tags: Iterable[str] | None = None,
        from_time: When | None = None,
        to_time: When | None = None,
        limit: int | None = None,
    ) -> Paginator[MessageSummary]:
        """Every matching message, newest first; `limit` is the page size (at most 100)."""
        filters = v2.message_filters(
            status=status,
            sender=sender,
            recipient=recipient,
            subject=subject,
            message_id_header=message_id_header,
            tags=tags,
            from_time=from_time,
            to_time=to_time,
        )
        return Paginator(self._run, self._paths.list_messages(filters, limit))

    def get(self, message_id: str) -> Message:
        """A message with its content; `message_id` as created (`<uuid@host>`) or the bare UUID."""
        return self._call(self._paths.get_message(message_id))

    def cancel(self, message_id: str) -> SuccessResponse:
        """Cancel a scheduled message before its first attempt (any other is a `ValidationError`)."""
        return self._call(self._paths.cancel_message(message_id))


class Suppressions(Runner):
    def __init__(self, run: Callable[[Call[Any]], Any], paths: v2.Paths) -> None:
        super().__init__(run)
        self._paths = paths

    def create(
        self,
        email: str,
        *,
        expires_at: When,
        domain: str | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> CreateSuppressionResponse:
        request = self._paths.create_suppression(email, expires_at, domain, reason, idempotency_key)
        return self._call(request)

    def list(
        self,
        *,
        email: str | None = None,
        domain: str | None = None,
        from_time: When | None = None,
        to_time: When | None = None,
        limit: int | None = None,
    ) -> Paginator[Suppression]:
        filters = {"email": email, "domain": domain, **v2.time_filters(from_time, to_time)}
        return Paginator(self._run, self._paths.list_suppressions(filters, limit))

    def delete(self, email: str, *, domain: str | None = None) -> SuccessResponse:
        return self._call(self._paths.delete_suppression(email, domain))

    def delete_all(self, *, domain: str | None = None) -> SuccessResponse:
        return self._call(self._paths.delete_all_suppressions(domain))


class V2Webhooks(Runner):
    def __init__(self, run: Callable[[Call[Any]], Any], paths: v2.Paths) -> None:
        super().__init__(run)
        self._paths = paths

    def create(
        self,
        name: str,
        url: str,
        *,
        events: Iterable[str] = (),
        scope: Literal["global", "scoped"] = "global",
        domains: Iterable[str] | None = None,
        enabled: bool | None = None,
        idempotency_key: str | None = None,
    ) -> CreatedWebhook:
        """A webhook subscribed to `events` (e.g. `["delivered", "bounced"]`, the `on_*` flags)."""
        body = v2.webhook_body(
            name=name, url=url, events=events, enabled=enabled, scope=scope, domains=domains
        )
        return self._call(self._paths.create_webhook(body, idempotency_key))

    def get(self, webhook_id: str) -> V2Webhook:
        return self._call(self._paths.get_webhook(webhook_id))

    def list(self, *, enabled: bool | None = None, limit: int | None = None) -> Paginator[V2Webhook]:
        return Paginator(self._run, self._paths.list_webhooks({"enabled": enabled}, limit))

    def update(
        self,
        webhook_id: str,
        *,
        name: str | None = None,
        url: str | None = None,
        events: Iterable[str] | None = None,
        enabled: bool | None = None,
        scope: Literal["global", "scoped"] | None = None,
        domains: Iterable[str] | None = None,
    ) -> V2Webhook:
        """Change the fields given; `events` sets every `on_*` flag (named: on, others: off)."""
        body = v2.webhook_body(
            name=name, url=url, events=events, enabled=enabled, scope=scope, domains=domains
        )
        return self._call(self._paths.update_webhook(webhook_id, body))

    def delete(self, webhook_id: str) -> SuccessResponse:
        return self._call(self._paths.delete_webhook(webhook_id))

    def deliveries(self, webhook_id: str, *, limit: int | None = None) -> Paginator[V2WebhookDelivery]:
        """The webhook's delivery log, newest first (a MailSage extension of v2)."""
        return Paginator(self._run, self._paths.list_deliveries(webhook_id, limit))

    def replay(self, webhook_id: str, delivery_id: str, *, idempotency_key: str | None = None) -> ReplayReply:
        """Send a logged delivery again (a MailSage extension of v2)."""
        return self._call(self._paths.replay_delivery(webhook_id, delivery_id, idempotency_key))

    def test(
        self, webhook_id: str, event_type: str | None = None, *, idempotency_key: str | None = None
    ) -> V2TestEventReply:
        """Queue a sample event for this webhook (a MailSage extension of the v2 surface)."""
        return self._call(self._paths.test_webhook(webhook_id, event_type, idempotency_key))


class Account:
    """One account's v2 surface."""

    def __init__(self, run: Callable[[Call[Any]], Any], account_id: str) -> None:
        self.account_id = account_id
        paths = v2.Paths(account_id)
        self.messages = Messages(run, paths)
        self.suppressions = Suppressions(run, paths)
        self.webhooks = V2Webhooks(run, paths)

"""Webhook endpoints of an account: create, read, list, change, delete; their delivery log, and
replaying one delivery.

Both API surfaces use this service. A webhook subscribes to event types (`EVENT_TYPES`): v1 names
them directly (message.* and MailSage's own job.*), v2 through AhaSend's `on_*` flags
(`EVENT_FLAGS`), which cover the message.*, suppression.* and domain.* events only.

Rules:
- the URL is checked by `check_webhook_url` on every create and change (public hosts only unless
  the deployment allows private ones);
- `scope` is "global" (every event of the account) or "scoped" (events of mail from one of
  `domains`); a scoped webhook is created with at least one domain, a global one has none;
- the signing secret is made at creation, returned once (by `create`) and never changed; so is its
  `signing` scheme, chosen by the surface that creates it: v1 makes Standard Webhooks secrets
  ("whsec_" + base64 of 32 random bytes; the key is those bytes), v2 AhaSend's (the key is the
  secret's literal UTF-8 bytes);
- `send_test` queues a sample event of a chosen type (domain/webhook_samples.py), marked as a test;
- re-enabling a webhook (enabled false -> true) forgets why and after how many errors it was
  disabled;
- every call is scoped to the account: another account's webhook is not found.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from typing import Any

from mailsage.domain.clock import Clock, system_clock
from mailsage.domain.models import (
    EVENT_TYPES,
    WEBHOOK_SECRET_PREFIX,
    EventType,
    Webhook,
    WebhookDelivery,
    WebhookScope,
    WebhookSigning,
)
from mailsage.domain.suppressions import check_domain
from mailsage.domain.urls import check_webhook_url
from mailsage.domain.webhook_samples import DEFAULT_TEST_EVENT, is_test_payload, sample_body, sample_event
from mailsage.errors import Conflict, MailSageError, NotFound, ValidationFailed
from mailsage.ports import Queue, WebhookStores

MAX_NAME_LENGTH = 255
MAX_DOMAINS = 100
SCOPES = tuple(WebhookScope)
_SCAN_PAGE = 100  # webhooks per store call when the service walks a listing (filters, `before`)

Webhooks = list[Webhook]  # (inside WebhookService, `list` is its method)


class WebhooksUnavailable(MailSageError):
    """The deployment has no webhook queue, so nothing can be sent to a webhook (HTTP 503)."""

    code = "service_unavailable"


@dataclass(slots=True, frozen=True)
class WebhookPage:
    items: list[Webhook]
    has_more: bool  # more items after the last one of this page
    next_cursor: str | None  # pass as `after` for the next page
    previous_cursor: str | None  # pass as `before` for the previous page


@dataclass(slots=True, frozen=True)
class DeliveryPage:
    items: list[WebhookDelivery]
    has_more: bool
    next_cursor: str | None


# -- checks ------------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationFailed("name: a webhook needs a name", {"field": "name"})
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed(
            f"name: {len(name)} characters long; the limit is {MAX_NAME_LENGTH}", {"field": "name"}
        )
    if any(c in name for c in "\r\n\x00"):
        raise ValidationFailed("name: must not contain a line break", {"field": "name"})
    return name


def check_events(events: Sequence[str]) -> list[str]:
    """The distinct event types, sorted; ValidationFailed naming the first unknown one."""
    for event in events:
        if event not in EVENT_TYPES:
            raise ValidationFailed(
                f"events: unknown event type {event!r}; expected one of {', '.join(sorted(EVENT_TYPES))}",
                {"field": "events", "value": event if isinstance(event, str) else None},
            )
    return sorted(set(events))


def check_scope(scope: str) -> WebhookScope:
    if scope not in SCOPES:
        raise ValidationFailed(f"scope: must be global or scoped, not {scope!r}", {"field": "scope"})
    return WebhookScope(scope)


def check_domains(domains: Sequence[str]) -> list[str]:
    """Lower-cased host names, each once, in the order given."""
    if len(domains) > MAX_DOMAINS:
        raise ValidationFailed(
            f"domains: {len(domains)} given; the limit is {MAX_DOMAINS}", {"field": "domains"}
        )
    out: list[str] = []
    for value in domains:
        domain = check_domain(value, "domains") if isinstance(value, str) else None
        if domain is None:
            raise ValidationFailed(f"domains: {value!r} is not a valid domain name", {"field": "domains"})
        if domain not in out:
            out.append(domain)
    return out


def new_secret(signing: WebhookSigning = WebhookSigning.STANDARD) -> str:
    if signing is WebhookSigning.STANDARD:
        return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    return WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)


@dataclass(slots=True, frozen=True)
class QueuedTest:
    """A test event on its way to a webhook."""

    delivery_id: str  # the `webhook-id` header; the delivery log shows it once it was attempted
    webhook_id: str
    event_type: str
    payload: str  # the exact JSON body that will be signed and posted


# -- the service -------------------------------------------------------------------------------------


class WebhookService:
    def __init__(
        self,
        store: WebhookStores,
        queue: Queue | None,
        allow_private: bool = False,
        clock: Clock = system_clock,
    ) -> None:
        self.store = store
        self.queue = queue  # the webhook queue; None where the deployment has none
        self.allow_private = allow_private
        self.clock = clock

    def create(
        self,
        account_id: str,
        name: str,
        url: str,
        events: Sequence[str],
        enabled: bool = True,
        scope: str = WebhookScope.GLOBAL,
        domains: Sequence[str] | None = None,
        now: float | None = None,
        signing: WebhookSigning = WebhookSigning.STANDARD,
    ) -> Webhook:
        """A new webhook with a new secret (the only time the secret is handed out), signed under
        `signing`. A scoped webhook needs at least one domain; a global one ignores `domains`."""
        now = self.clock() if now is None else now
        name = check_name(name)
        url = check_webhook_url(url, self.allow_private)
        events = check_events(events)
        checked_scope = check_scope(scope)
        if checked_scope == WebhookScope.SCOPED:
            domains = check_domains(domains or [])
            if not domains:
                raise ValidationFailed(
                    "domains: a scoped webhook needs at least one domain", {"field": "domains"}
                )
        else:
            domains = []
        webhook = Webhook(
            id=str(uuid.uuid4()),
            account_id=account_id,
            name=name,
            url=url,
            secret=new_secret(signing),
            enabled=bool(enabled),
            events=events,
            created_at=now,
            updated_at=now,
            scope=checked_scope,
            domains=list(domains),
            signing=signing,
        )
        self.store.put_webhook(webhook)
        return webhook

    def get(self, account_id: str, webhook_id: str) -> Webhook:
        webhook = self.store.get_webhook(account_id, webhook_id)
        if webhook is None:
            raise NotFound(f"webhook {webhook_id!r} not found")
        return webhook

    def list(
        self,
        account_id: str,
        limit: int = 100,
        after: str | None = None,
        *,
        before: str | None = None,
        enabled: bool | None = None,
        subscribed: Mapping[str, bool] | None = None,
    ) -> WebhookPage:
        """One page of the account's webhooks in id order. `enabled` keeps those with that state;
        `subscribed` maps event types to whether a webhook must (True) or must not (False) be
        subscribed to it. `before` pages towards the start of the listing."""
        if after and before:
            raise ValidationFailed("give either after or before, not both", {"field": "after"})
        if limit < 1:
            raise ValidationFailed("limit must be at least 1", {"field": "limit"})
        wanted = dict(subscribed or {})
        for event in wanted:
            check_events([event])

        def keep(w: Webhook) -> bool:
            if enabled is not None and w.enabled != enabled:
                return False
            return all((event in w.events) == flag for event, flag in wanted.items())

        if before:
            return self._page_before(account_id, limit, before, keep)
        if enabled is None and not wanted:
            items, more = self.store.list_webhooks(account_id, limit, after)
        else:
            items, more = self._filtered_after(account_id, limit, after, keep)
        return WebhookPage(
            items=items,
            has_more=more,
            next_cursor=items[-1].id if more and items else None,
            previous_cursor=items[0].id if after and items else None,
        )

    def update(
        self,
        account_id: str,
        webhook_id: str,
        *,
        name: str | None = None,
        url: str | None = None,
        enabled: bool | None = None,
        events: Sequence[str] | None = None,
        subscribe: Mapping[str, bool] | None = None,
        scope: str | None = None,
        domains: Sequence[str] | None = None,
        now: float | None = None,
    ) -> Webhook:
        """Change what is given; None leaves a field as it is.

        `events` replaces the subscriptions; `subscribe` then turns single event types on (True)
        or off (False), leaving the others (v2's `on_*` flags, which never touch job.* events).
        Scope and domains, as AhaSend's UpdateWebhookRequest: global -> scoped needs a non-empty
        `domains`; on a webhook that stays scoped a list replaces the domains (`[]` clears them);
        a webhook that is or becomes global has no domains and ignores those given."""
        current = self.get(account_id, webhook_id)
        changed = replace(current, events=list(current.events), domains=list(current.domains))
        if name is not None:
            changed.name = check_name(name)
        if url is not None:
            changed.url = check_webhook_url(url, self.allow_private)
        if events is not None:
            changed.events = check_events(events)
        if subscribe:
            changed.events = _subscribed(changed.events, subscribe)
        if scope is not None:
            changed.scope = check_scope(scope)
        changed.domains = _scoped_domains(current, changed.scope, domains)
        if enabled is not None:
            if enabled and not current.enabled:  # re-enabled: start counting failures afresh
                changed.errors_since_last_success = 0
                changed.disabled_reason = None
            changed.enabled = bool(enabled)
        changed.updated_at = self.clock() if now is None else now
        self.store.put_webhook(changed)
        return changed

    def delete(self, account_id: str, webhook_id: str) -> None:
        if not self.store.delete_webhook(account_id, webhook_id):
            raise NotFound(f"webhook {webhook_id!r} not found")

    # -- delivery log ----------------------------------------------------------------------------

    def deliveries(
        self, account_id: str, webhook_id: str, limit: int = 50, after: str | None = None
    ) -> DeliveryPage:
        """The webhook's deliveries, newest first; NotFound for an unknown (or another account's)
        webhook."""
        self.get(account_id, webhook_id)
        items, more = self.store.list_webhook_deliveries(account_id, webhook_id, limit, after)
        return DeliveryPage(items=items, has_more=more, next_cursor=items[-1].id if more and items else None)

    def replay(self, account_id: str, webhook_id: str, delivery_id: str) -> WebhookDelivery:
        """Send a logged delivery again (same id and payload, so a receiver can tell it is the
        same event). NotFound for an unknown webhook or delivery; Conflict if the webhook is
        disabled; WebhooksUnavailable without a webhook queue."""
        webhook = self.get(account_id, webhook_id)
        delivery = self.store.get_webhook_delivery(account_id, webhook_id, delivery_id)
        if delivery is None:
            raise NotFound(f"delivery {delivery_id!r} of webhook {webhook_id!r} not found")
        if not webhook.enabled:
            raise Conflict(f"webhook {webhook_id!r} is disabled; enable it before replaying a delivery")
        if self.queue is None:
            raise WebhooksUnavailable("webhook deliveries are not configured in this deployment")
        self.queue.send([replay_body(delivery)])
        return delivery

    def send_test(
        self,
        account_id: str,
        webhook_id: str,
        event_type: str | None = None,
        *,
        allowed: AbstractSet[str] = EVENT_TYPES,
    ) -> QueuedTest:
        """Queue a sample event of `event_type` (one of `allowed`; by default message.delivered if
        the webhook subscribes to it, else its first subscription) for the webhook, through the
        normal delivery path. The type need not be subscribed. NotFound, ValidationFailed for a
        type not allowed, Conflict if the webhook is disabled, WebhooksUnavailable without a queue."""
        webhook = self.get(account_id, webhook_id)
        chosen = _test_event_type(webhook, event_type, allowed)
        if not webhook.enabled:
            raise Conflict(f"webhook {webhook_id!r} is disabled; enable it before sending a test event")
        if self.queue is None:
            raise WebhooksUnavailable("webhook deliveries are not configured in this deployment")
        body = sample_body(webhook, sample_event(webhook, chosen, self.clock()))
        self.queue.send([body])
        return QueuedTest(body["delivery_id"], webhook.id, chosen, body["payload"])

    # -- helpers ---------------------------------------------------------------------------------

    def _filtered_after(
        self, account_id: str, limit: int, after: str | None, keep: Callable[[Webhook], bool]
    ) -> tuple[Webhooks, bool]:
        items: Webhooks = []
        cursor = after
        while True:
            batch, more = self.store.list_webhooks(account_id, _SCAN_PAGE, cursor)
            for webhook in batch:
                if not keep(webhook):
                    continue
                if len(items) == limit:
                    return items, True
                items.append(webhook)
            if not more or not batch:
                return items, False
            cursor = batch[-1].id

    def _page_before(
        self, account_id: str, limit: int, before: str, keep: Callable[[Webhook], bool]
    ) -> WebhookPage:
        # The store pages forwards only: walk from the start to the cursor, keeping the last page.
        window: deque[Webhook] = deque(maxlen=limit + 1)
        cursor: str | None = None
        while True:
            batch, more = self.store.list_webhooks(account_id, _SCAN_PAGE, cursor)
            for webhook in batch:
                if webhook.id == before:
                    page = list(window)
                    earlier = len(page) > limit
                    page = page[-limit:]
                    return WebhookPage(
                        items=page,
                        has_more=bool(page),  # the cursor's webhook itself comes after this page
                        next_cursor=page[-1].id if page else None,
                        previous_cursor=page[0].id if earlier else None,
                    )
                if keep(webhook):
                    window.append(webhook)
            if not more or not batch:
                raise ValidationFailed(
                    "before: no such webhook in this listing (it may have been deleted)", {"field": "before"}
                )
            cursor = batch[-1].id


def replay_body(delivery: WebhookDelivery) -> dict[str, Any]:
    """The webhook queue body that sends `delivery` again (a test event's stays a test)."""
    body: dict[str, Any] = {
        "delivery_id": delivery.id,
        "account_id": delivery.account_id,
        "webhook_id": delivery.webhook_id,
        "event_type": delivery.event_type,
        "payload": delivery.payload,
        "created_at": delivery.created_at,
        "replay": True,
    }
    if is_test_payload(delivery.payload):
        body["test"] = True
    return body


def _test_event_type(webhook: Webhook, event_type: str | None, allowed: AbstractSet[str]) -> EventType:
    if event_type is None:
        subscribed = sorted(e for e in webhook.events if e in allowed)
        if DEFAULT_TEST_EVENT in subscribed or not subscribed:
            return DEFAULT_TEST_EVENT
        return EventType(subscribed[0])
    if event_type not in allowed:
        raise ValidationFailed(
            f"event_type: unknown event type {event_type!r}; expected one of {', '.join(sorted(allowed))}",
            {"field": "event_type", "value": event_type if isinstance(event_type, str) else None},
        )
    return EventType(event_type)


def _subscribed(events: Sequence[str], subscribe: Mapping[str, bool]) -> list[str]:
    """`events` with single event types turned on (True) or off (False)."""
    chosen = set(events)
    for event, on in subscribe.items():
        check_events([event])
        if on:
            chosen.add(event)
        else:
            chosen.discard(event)
    return sorted(chosen)


def _scoped_domains(current: Webhook, scope: WebhookScope, domains: Sequence[str] | None) -> list[str]:
    """The domains after an update to `scope` (AhaSend's rules, see WebhookService.update)."""
    if scope == WebhookScope.GLOBAL:
        return []
    if current.scope == WebhookScope.GLOBAL:  # becoming scoped
        chosen = check_domains(domains or [])
        if not chosen:
            raise ValidationFailed(
                "domains: changing a global webhook to scoped needs a non-empty domains list"
                " in the same request",
                {"field": "domains"},
            )
        return chosen
    return check_domains(domains) if domains is not None else list(current.domains)

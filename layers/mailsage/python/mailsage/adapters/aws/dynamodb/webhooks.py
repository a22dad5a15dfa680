"""Webhook endpoints with their attempt counters, and the log of their deliveries."""

from __future__ import annotations

import time
from typing import Any

from mailsage.adapters.aws.dynamodb.client import TableClient
from mailsage.adapters.aws.dynamodb.keys import (
    WEBHOOK_PREFIX,
    deliveries_index,
    delivery_key,
    exact_time,
    ttl_not_before,
    webhook_key,
)
from mailsage.adapters.aws.dynamodb.records import decode_delivery, decode_webhook, delivery_expired
from mailsage.adapters.aws.table import GSI1_NAME, GSI1_PARTITION_KEY, GSI1_SORT_KEY, TTL_ATTRIBUTE
from mailsage.domain.models import Webhook, WebhookDelivery

_AUTO_DISABLED = "disabled after {} consecutive failed deliveries"  # a webhook's disabled_reason


class Webhooks(TableClient):
    """WebhookStore and WebhookDeliveryStore on the table."""

    def put_webhook(self, webhook: Webhook) -> None:
        self._put(
            {
                **webhook_key(webhook.account_id, webhook.id),
                "id": webhook.id,
                "account_id": webhook.account_id,
                "name": webhook.name,
                "url": webhook.url,
                "secret": webhook.secret,
                "enabled": webhook.enabled,
                "events": list(webhook.events),
                "created_at": webhook.created_at,
                "updated_at": webhook.updated_at,
                "scope": webhook.scope,
                "domains": list(webhook.domains),
                "success_count": webhook.success_count,
                "error_count": webhook.error_count,
                "errors_since_last_success": webhook.errors_since_last_success,
                "last_request_at": webhook.last_request_at,
                "disabled_reason": webhook.disabled_reason,
                "signing": webhook.signing.value,
            }
        )

    def get_webhook(self, account_id: str, webhook_id: str) -> Webhook | None:
        item = self._get(webhook_key(account_id, webhook_id))
        return decode_webhook(item) if item else None

    def list_webhooks(self, account_id: str, limit: int, after: str | None) -> tuple[list[Webhook], bool]:
        limit = max(limit, 0)
        items = list(
            self._query(
                "#pk = :pk AND begins_with(#sk, :prefix)",
                {":pk": f"ACCOUNT#{account_id}", ":prefix": WEBHOOK_PREFIX},
                consistent=True,
                start=webhook_key(account_id, after) if after is not None else None,
                limit=limit + 1,
            )
        )
        return [decode_webhook(item) for item in items[:limit]], len(items) > limit

    def delete_webhook(self, account_id: str, webhook_id: str) -> bool:
        """The webhook only (ReturnValues ALL_OLD tells whether it existed): its deliveries stay
        until their TTL (the port allows it: "goes with it, or expires"), so that a delete costs one
        write however long the log is."""
        return self._delete(webhook_key(account_id, webhook_id))

    def record_webhook_attempt(
        self, account_id: str, webhook_id: str, ok: bool, at: float, disable_after: int
    ) -> Webhook | None:
        """One UpdateItem (ADD the counters, condition: it exists, ReturnValues ALL_NEW); when the
        failures in a row reached `disable_after` on an enabled webhook, a second, conditional one
        disables it (only one racing caller does; a success in between prevents it)."""
        key = webhook_key(account_id, webhook_id)
        if ok:
            update = "SET #last_request = :at, #streak = :zero ADD #successes :one"
            values: dict[str, Any] = {":at": at, ":zero": 0, ":one": 1}
        else:
            update = "SET #last_request = :at ADD #failures :one, #streak :one"
            values = {":at": at, ":one": 1}
        applied, item = self._try_update(key, update, values, "attribute_exists(#pk)", returns="ALL_NEW")
        if not applied or item is None:
            return None
        if not ok and item["enabled"] and int(item["errors_since_last_success"]) >= disable_after:
            _, item = self._try_update(
                key,
                "SET #enabled = :false, #reason = :reason",
                {
                    ":false": False,
                    ":true": True,
                    ":reason": _AUTO_DISABLED.format(disable_after),
                    ":limit": disable_after,
                },
                "#enabled = :true AND #streak >= :limit",
                returns="ALL_NEW",
            )  # applied: the item now; not applied: the item as it is (None: deleted meanwhile)
            if item is None:
                return None
        return decode_webhook(item)

    def put_webhook_delivery(self, delivery: WebhookDelivery) -> None:
        self._put(
            {
                **delivery_key(delivery.account_id, delivery.webhook_id, delivery.id),
                "id": delivery.id,
                "account_id": delivery.account_id,
                "webhook_id": delivery.webhook_id,
                "event_type": delivery.event_type,
                "payload": delivery.payload,
                "created_at": delivery.created_at,
                "updated_at": delivery.updated_at,
                "status": delivery.status,
                "attempts": list(delivery.attempts),
                "next_attempt_at": delivery.next_attempt_at,
                "expires_at": delivery.expires_at,
                TTL_ATTRIBUTE: None if delivery.expires_at is None else ttl_not_before(delivery.expires_at),
                # the webhook's deliveries, newest first (list_webhook_deliveries)
                GSI1_PARTITION_KEY: deliveries_index(delivery.account_id, delivery.webhook_id),
                GSI1_SORT_KEY: f"{exact_time(delivery.created_at)}#{delivery.id}",
            }
        )

    def get_webhook_delivery(
        self, account_id: str, webhook_id: str, delivery_id: str
    ) -> WebhookDelivery | None:
        """GetItem; the account and webhook are in the key. An expired one is not found."""
        item = self._get(delivery_key(account_id, webhook_id, delivery_id))
        if item is None or delivery_expired(item, time.time()):
            return None
        return decode_delivery(item)

    def list_webhook_deliveries(
        self, account_id: str, webhook_id: str, limit: int, after: str | None
    ) -> tuple[list[WebhookDelivery], bool]:
        """GetItem the cursor's delivery (for its sort key), then Query gsi1
        `WEBHOOK#{acct}#{webhook}#DELIVERIES` descending below it, first page 25 items, doubling;
        expired ones are skipped until limit + 1 matched. An unknown cursor (or another webhook's)
        reads as no cursor."""
        limit = max(limit, 0)
        condition = "#g1pk = :pk"
        values: dict[str, Any] = {":pk": deliveries_index(account_id, webhook_id)}
        cursor = None if after is None else self._get(delivery_key(account_id, webhook_id, after))
        if cursor is not None:
            condition += " AND #g1sk < :cursor"
            values[":cursor"] = cursor[GSI1_SORT_KEY]
        now = time.time()
        page: list[WebhookDelivery] = []
        for item in self._query(
            condition, values, index=GSI1_NAME, forward=False, page_size=self.LISTING_PAGE
        ):
            if delivery_expired(item, now) or item["account_id"] != account_id:
                continue
            page.append(decode_delivery(item))
            if len(page) > limit:
                break
        return page[:limit], len(page) > limit

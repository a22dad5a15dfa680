"""Items -> domain objects: jobs, messages (from their item, chunk state, log and data), templates,
suppressions, idempotency records, webhooks and deliveries; typed values are decoded here."""

from __future__ import annotations

import copy
import json
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from typing import Any

from mailsage.adapters.aws.dynamodb.keys import CHUNK_PREFIX, Item, is_expired
from mailsage.adapters.aws.table import PARTITION_KEY, SORT_KEY
from mailsage.domain.models import (
    ENGAGEMENT_KINDS,
    Content,
    IdempotencyRecord,
    IdempotencyState,
    Job,
    JobKind,
    JobState,
    Message,
    MessageStatus,
    Suppression,
    Template,
    Webhook,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookScope,
    WebhookSigning,
)

BODY_FIELDS = ("text", "html", "amp", "attachments")  # the content's data (retention_data_days)


def optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def json_text(value: Any) -> Any:
    """A content or body attribute, parsed: JSON text, or JSON compressed with zlib (binary;
    JobCreation stores it so when that is smaller)."""
    return json.loads(value if isinstance(value, str) else zlib.decompress(bytes(value)))


def decode_content(content: Item, body: Item | None, now: float) -> Content:
    """The job's content; with a data retention its bodies are a separate item, which is gone (or
    expired) once the retention has passed: then the bodies read as empty."""
    data = json_text(content["content"])
    if content.get("body_separate"):
        kept = json_text(body["body"]) if body is not None and not is_expired(body, now) else {}
        data |= {field: kept.get(field) for field in BODY_FIELDS}
    return Content.from_dict(data)


def decode_job(head: Item, content: Item, body: Item | None, counts: dict[str, int]) -> Job:
    return Job(
        id=head[PARTITION_KEY].removeprefix("JOB#"),
        account_id=head["account_id"],
        kind=JobKind(head["kind"]),
        state=JobState(head["state"]),
        content=decode_content(content, body, time.time()),
        total=int(head["total"]),
        created_at=float(head["created_at"]),
        updated_at=float(head["updated_at"]),
        campaign_id=head.get("campaign_id"),
        chunks=int(head["chunks"]),
        started_at=optional_float(head.get("started_at")),
        finished_at=optional_float(head.get("finished_at")),
        counts=counts,
        dead_letters=list(head.get("dead_letters", [])),
        first_attempt_at=optional_float(head.get("first_attempt_at")),
        expires_at=optional_float(head.get("expires_at")),
        retention_metadata_days=head.get("retention_metadata_days"),
        retention_data_days=head.get("retention_data_days"),
        paused_reason=head.get("paused_reason"),
        throttled=int(head.get("throttled", 0)),
        send_rate=optional_float(head.get("send_rate")),
    )


def message_id_of(item: Item) -> str:
    return str(item[PARTITION_KEY]).removeprefix("MSG#")


def ordered_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The log in the order it was written, except that status events are sorted by time among
    themselves (in the places they hold): each is written just after its transition, so a delivery
    event may overtake the send's own. Engagement events are recorded by their log write alone and
    stay where they were appended."""
    slots = [i for i, event in enumerate(events) if event.get("status") not in ENGAGEMENT_KINDS]
    ordered = list(events)
    for i, event in zip(
        slots, sorted((events[i] for i in slots), key=lambda e: float(e["time"])), strict=True
    ):
        ordered[i] = event
    return ordered


# A message in one of these statuses with no attempt has no event yet (see may_have_events).
NO_EVENTS_YET = frozenset(
    s.value
    for s in (MessageStatus.QUEUED, MessageStatus.SCHEDULED, MessageStatus.SENDING, MessageStatus.SUPPRESSED)
)


def may_have_events(state: Item, pos: int) -> bool:
    """Whether the message at `pos` may have a log item. Every transition that logs an event either
    counts an attempt (finish, release) or leaves these statuses (cancel_message, expire_unsent,
    update_delivery_status, which the domain only applies to attempted messages); so a message
    still in one of them with no attempt has no event, and its log item need not be read."""
    return int(state["attempts"][pos]) > 0 or state["statuses"][pos] not in NO_EVENTS_YET


def decode_variables(item: Item, data: Item | None, now: float) -> dict[str, Any]:
    if "variables" in item:
        kept = item["variables"]  # JSON text (message item) or a packed chunk's parsed row
        return dict(json.loads(kept)) if isinstance(kept, str) else copy.deepcopy(kept)
    if data is None or is_expired(data, now):  # past retention_data_days
        return {}
    return dict(json.loads(data["variables"]))


SENT_LOG = "accepted by the relay"  # the text of the "sent" event


def folded_report(state: Item, pos: int) -> tuple[dict[str, Any], float] | None:
    """The message's first delivery report when its status write held it in the state instead of
    the log (Messages.update_delivery_status): (its event, the send's time), else None. Its time
    and status are the state's; its text the detail that write stored, else the status."""
    sent_at = (state.get("folded_sent_at") or [None] * (pos + 1))[pos]
    if sent_at is None:
        return None
    status = state["statuses"][pos]
    text = state["error_messages"][pos] or status
    return {"time": float(state["changed_at"][pos]), "status": status, "log": text}, float(sent_at)


def events_and_sent_at(state: Item, pos: int, log: Item | None) -> tuple[list[dict[str, Any]], float | None]:
    """The message's events and sent_at. The send itself writes no log (its time is the state's
    changed_at while the message is sent; the transition that leaves `sent` keeps it: in the state
    for the first delivery report, whose event is made up here too, or in the log's sent_at), so
    its event is made up here, first (the status events are then put in time order). A log written
    before this scheme holds the event itself, and is taken as it is."""
    events = list(log.get("events", [])) if log else []
    sent_at = optional_float(log.get("sent_at")) if log else None
    status = state["statuses"][pos]
    folded = folded_report(state, pos)
    if folded is not None:
        report, folded_sent_at = folded
        sent_at = folded_sent_at if sent_at is None else sent_at
        # where its log write would have appended it: after what the log holds from before it
        at = next((i for i, e in enumerate(events) if float(e["time"]) > report["time"]), len(events))
        events.insert(at, report)
    if sent_at is None and status == MessageStatus.SENT:
        sent_at = float(state["changed_at"][pos])
    if sent_at is not None and not any(e.get("status") == MessageStatus.SENT for e in events):
        text = state["error_messages"][pos] if status == MessageStatus.SENT else None
        events.insert(0, {"time": sent_at, "status": MessageStatus.SENT.value, "log": text or SENT_LOG})
    return ordered_events(events), sent_at


def delivered_at(state: Item, pos: int, log: Item | None) -> float | None:
    """The log's delivered_at, else the state's time of a delivery report held there."""
    if log and log.get("delivered_at") is not None:
        return float(log["delivered_at"])
    if folded_report(state, pos) is not None and state["statuses"][pos] == MessageStatus.DELIVERED:
        return float(state["changed_at"][pos])
    return None


def decode_message(
    item: Item, state: Item, created_at: float, variables: dict[str, Any], log: Item | None
) -> Message:
    pos = int(item["pos"])
    events, sent_at = events_and_sent_at(state, pos, log)
    return Message(
        id=message_id_of(item),
        job_id=item["job_id"],
        account_id=item["account_id"],
        seq=int(item["seq"]),
        chunk=int(item["chunk"]),
        email=item["email"],
        name=item.get("name"),
        variables=variables,
        status=MessageStatus(state["statuses"][pos]),
        attempts=int(state["attempts"][pos]),
        error_code=state["error_codes"][pos],
        error_message=state["error_messages"][pos],
        updated_at=float(state["changed_at"][pos]),
        subject=item.get("subject", ""),
        created_at=created_at,
        sent_at=sent_at,
        delivered_at=delivered_at(state, pos, log),
        events=events,
    )


def decode_template(item: Item) -> Template:
    return Template(
        id=item["id"],
        account_id=item["account_id"],
        name=item["name"],
        subject=item["subject"],
        html=item.get("html"),
        text=item.get("text"),
        created_at=float(item["created_at"]),
        updated_at=float(item["updated_at"]),
    )


def decode_suppression(item: Item) -> Suppression:
    return Suppression(
        id=item["id"],
        account_id=item["account_id"],
        email=item["email"],
        domain=item.get("domain") or None,
        reason=item["reason"],
        created_at=float(item["created_at"]),
        expires_at=float(item["expires_at"]),
    )


def decode_idempotency(item: Item) -> IdempotencyRecord:
    status = item.get("status")
    return IdempotencyRecord(
        account_id=item["account_id"],
        key=item["key"],
        fingerprint=item["fingerprint"],
        state=IdempotencyState(item["state"]),
        created_at=float(item["created_at"]),
        expires_at=float(item["expires_at"]),
        status=None if status is None else int(status),
        body=item.get("body"),
        headers=dict(item.get("headers") or {}),
    )


def decode_webhook(item: Item) -> Webhook:
    return Webhook(
        id=item["id"],
        account_id=item["account_id"],
        name=item["name"],
        url=item["url"],
        secret=item["secret"],
        enabled=bool(item["enabled"]),
        events=list(item.get("events", [])),
        created_at=float(item["created_at"]),
        updated_at=float(item["updated_at"]),
        scope=WebhookScope(item.get("scope", WebhookScope.GLOBAL)),
        domains=list(item.get("domains", [])),
        success_count=int(item.get("success_count", 0)),
        error_count=int(item.get("error_count", 0)),
        errors_since_last_success=int(item.get("errors_since_last_success", 0)),
        last_request_at=optional_float(item.get("last_request_at")),
        disabled_reason=item.get("disabled_reason"),
        # items written before the scheme was stored were signed with the literal secret
        signing=WebhookSigning(item.get("signing", WebhookSigning.LITERAL)),
    )


def decode_delivery(item: Item) -> WebhookDelivery:
    return WebhookDelivery(
        id=item["id"],
        account_id=item["account_id"],
        webhook_id=item["webhook_id"],
        event_type=item["event_type"],
        payload=item["payload"],
        created_at=float(item["created_at"]),
        updated_at=float(item["updated_at"]),
        status=WebhookDeliveryStatus(item["status"]),
        attempts=list(item.get("attempts", [])),
        next_attempt_at=optional_float(item.get("next_attempt_at")),
        expires_at=optional_float(item.get("expires_at")),
    )


def delivery_expired(item: Item, now: float) -> bool:
    expires = item.get("expires_at")
    return expires is not None and expires <= now


def counts_of(states: Iterable[Item]) -> dict[str, int]:
    return dict(Counter(status for state in states for status in state["statuses"]))


def chunk_of(state: Item) -> int:
    return int(state[SORT_KEY].removeprefix(CHUNK_PREFIX))

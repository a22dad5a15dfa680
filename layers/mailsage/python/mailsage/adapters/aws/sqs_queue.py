"""The queue port on an Amazon SQS standard queue.

SQS gives the semantics the port describes: a received message is invisible for the queue's
visibility timeout and reappears unless deleted; after `maxReceiveCount` receives the queue's
RedrivePolicy moves it to the dead-letter queue. Both queues and the redrive policy belong to the
infrastructure; this adapter only uses them.

Differences from the embedded queue, all allowed by the port:
- `supports_dedup` is False: a standard queue cannot deduplicate, so dedup keys are ignored. The
  sender claims each message before sending, so a duplicate chunk only costs a little work.
- Times are whole seconds: receive waits are rounded up (a positive wait is always a long poll,
  at most 20 s), retry delays are rounded up and capped at SQS's 12 hours.
- `dead_letters()` peeks at (at most `DEAD_LETTER_PEEK_LIMIT` of) the dead-letter queue without
  consuming it; SQS records no time of dead-lettering, so entries carry `sent_at` instead of
  `dead_at`.

In the Lambda deployment the sender receives chunks from the SQS event source mapping, not from
`receive`; it still uses `retry_later` with the receipt handle of its record.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from mailsage.ports import Received

log = logging.getLogger(__name__)

MAX_BATCH_ENTRIES = 10  # SendMessageBatch / ChangeMessageVisibilityBatch entry limit
MAX_BATCH_BYTES = 256 * 1024  # SendMessageBatch total payload limit
MAX_WAIT_SECONDS = 20  # ReceiveMessage long-poll limit
MAX_DELAY_SECONDS = 900  # SendMessage DelaySeconds limit
MAX_VISIBILITY_SECONDS = 43_200  # 12 hours
SEND_ATTEMPTS = 4  # per entry, for entries SQS reports as failed through no fault of ours
DEAD_LETTER_PEEK_LIMIT = 100
DEAD_LETTER_PEEK_VISIBILITY = 30  # seconds a peeked dead letter is hidden if resetting it fails

_STALE_RECEIPT_CODES = ("ReceiptHandleIsInvalid", "MessageNotInflight")
_COUNT_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


class SqsSendError(RuntimeError):
    """Some bodies could not be enqueued. `failed` holds SQS's failure entries (Id is the body's
    index in the `send` call). Bodies not listed were enqueued: sending again may duplicate them,
    which the queue's consumers tolerate."""

    def __init__(self, message: str, failed: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.failed = failed


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _is_stale_receipt(exc: Exception) -> bool:
    # The JSON protocol reports legacy codes such as "AWS.SimpleQueueService.MessageNotInflight".
    return _error_code(exc).endswith(_STALE_RECEIPT_CODES)


def _whole_seconds(seconds: float, cap: int) -> int:
    """Round up to whole seconds (never shorter than asked), within [0, cap]. The inner round()
    keeps float noise such as 3.0000000001 from adding a second."""
    return max(0, min(cap, math.ceil(round(seconds, 3))))


def _parse_body(raw: str) -> dict[str, Any]:
    """A body that is not a JSON object (nothing MailSage sent) is handed over as {"raw_body": ...}
    instead of failing the whole receive: its consumer fails on it alone, and the queue's redrive
    policy moves it to the dead-letter queue."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    log.warning("SQS message body is not a JSON object; passed on as raw_body")
    return {"raw_body": raw}


class SqsQueue:
    supports_dedup = False

    def __init__(self, queue_url: str, dead_letter_url: str | None = None, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self.dead_letter_url = dead_letter_url
        self._client = client
        self._client_lock = threading.Lock()

    def _sqs(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    self._client = boto3.client("sqs", config=Config(retries={"mode": "standard"}))
        return self._client

    # -- sending -----------------------------------------------------------------------------------

    def send(
        self,
        bodies: Sequence[dict[str, Any]],
        dedup_keys: Sequence[str] | None = None,
        delay_seconds: float = 0.0,
    ) -> None:
        """Enqueue every body, in batches of up to 10 entries and 256 KiB. Entries SQS fails on its
        side are retried a few times; anything still not accepted raises SqsSendError after all the
        other batches were sent, so nothing is lost silently (an error of a whole call raises at
        once). `dedup_keys` are ignored (see `supports_dedup`)."""
        if dedup_keys is not None and len(dedup_keys) != len(bodies):
            raise ValueError("dedup_keys must match bodies one to one")
        failed: list[dict[str, Any]] = []
        delay = _whole_seconds(delay_seconds, MAX_DELAY_SECONDS)
        for batch in self._batches([json.dumps(b, separators=(",", ":")) for b in bodies]):
            failed.extend(self._send_batch(batch, delay))
        if failed:
            summary = ", ".join(f"#{f['Id']}: {f.get('Code')} {f.get('Message', '')}".strip() for f in failed)
            raise SqsSendError(f"{len(failed)} of {len(bodies)} bodies were not enqueued ({summary})", failed)

    @staticmethod
    def _batches(encoded: list[str]) -> list[dict[str, str]]:
        batches: list[dict[str, str]] = []
        batch: dict[str, str] = {}
        size = 0
        for index, text in enumerate(encoded):
            length = len(text.encode())
            if batch and (len(batch) == MAX_BATCH_ENTRIES or size + length > MAX_BATCH_BYTES):
                batches.append(batch)
                batch, size = {}, 0
            batch[str(index)] = text  # the entry Id is the body's index in the send call
            size += length
        if batch:
            batches.append(batch)
        return batches

    def _send_batch(self, batch: dict[str, str], delay: int = 0) -> list[dict[str, Any]]:
        """Send one batch; returns the failure entries of the bodies that were not accepted."""
        pending = dict(batch)
        given_up: list[dict[str, Any]] = []
        retryable: list[dict[str, Any]] = []
        for attempt in range(SEND_ATTEMPTS):
            if attempt:
                time.sleep(0.05 * 2**attempt)
            response = self._sqs().send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": entry_id, "MessageBody": text, "DelaySeconds": delay}
                    for entry_id, text in pending.items()
                ],
            )
            failures = response.get("Failed", [])
            # A sender fault (too large, invalid) fails again on every attempt: no retry for it.
            given_up += [f for f in failures if f.get("SenderFault")]
            retryable = [f for f in failures if not f.get("SenderFault")]
            if not retryable:
                break
            pending = {f["Id"]: pending[f["Id"]] for f in retryable}
        else:
            return given_up + retryable
        return given_up

    # -- receiving -------------------------------------------------------------------------------

    def receive(self, max_messages: int = 10, wait_seconds: float = 0.0) -> list[Received]:
        if max_messages <= 0:
            return []
        response = self._sqs().receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(max_messages, 10),
            WaitTimeSeconds=_whole_seconds(wait_seconds, MAX_WAIT_SECONDS),
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [
            Received(
                receipt=m["ReceiptHandle"],
                body=_parse_body(m["Body"]),
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
                message_id=m["MessageId"],
            )
            for m in response.get("Messages", [])
        ]

    def ack(self, receipt: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self._sqs().delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)
        except ClientError as exc:
            # Like the embedded queue, a stale receipt (the message was received again since) is a
            # no-op: the newer receiver owns the message now.
            if not _is_stale_receipt(exc):
                raise
            log.warning("ack with a stale receipt ignored (%s)", _error_code(exc))

    def retry_later(self, receipt: str, delay_seconds: float) -> None:
        """ChangeMessageVisibility to the delay, rounded up to whole seconds and capped at 12 hours
        (SQS also refuses a total beyond 12 hours since the message was first received). A message
        no longer in flight (its visibility already ran out, or it was deleted) is left alone."""
        from botocore.exceptions import ClientError

        try:
            self._sqs().change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=receipt,
                VisibilityTimeout=_whole_seconds(delay_seconds, MAX_VISIBILITY_SECONDS),
            )
        except ClientError as exc:
            if not _is_stale_receipt(exc):
                raise
            log.warning("retry_later with a stale receipt ignored (%s)", _error_code(exc))

    # -- inspection --------------------------------------------------------------------------------

    def dead_letters(self) -> list[dict[str, Any]]:
        """Peek at the dead-letter queue without consuming it: receive (hidden for a moment, so that
        paging does not return the same messages again), then make every peeked message visible at
        once. Each entry: body, receive_count (receives before this peek; earlier peeks count too),
        message_id, sent_at (epoch seconds the message was first sent). At most
        DEAD_LETTER_PEEK_LIMIT entries, oldest first; [] without a dead-letter queue."""
        if not self.dead_letter_url:
            return []
        client = self._sqs()
        entries: dict[str, dict[str, Any]] = {}
        receipts: list[str] = []
        try:
            while len(entries) < DEAD_LETTER_PEEK_LIMIT:
                response = client.receive_message(
                    QueueUrl=self.dead_letter_url,
                    MaxNumberOfMessages=min(10, DEAD_LETTER_PEEK_LIMIT - len(entries)),
                    # A short poll may miss messages on a sparse queue; a 1 s long poll does not.
                    WaitTimeSeconds=1,
                    VisibilityTimeout=DEAD_LETTER_PEEK_VISIBILITY,
                    MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                )
                messages = response.get("Messages", [])
                if not messages:
                    break
                for m in messages:
                    receipts.append(m["ReceiptHandle"])
                    attributes = m.get("Attributes", {})
                    entries[m["MessageId"]] = {
                        "body": _parse_body(m["Body"]),
                        "receive_count": max(0, int(attributes.get("ApproximateReceiveCount", 1)) - 1),
                        "message_id": m["MessageId"],
                        "sent_at": int(attributes.get("SentTimestamp", 0)) / 1000,
                    }
        finally:
            self._reveal(self.dead_letter_url, receipts)
        return sorted(entries.values(), key=lambda e: (e["sent_at"], e["message_id"]))

    def _reveal(self, queue_url: str, receipts: list[str]) -> None:
        """Make peeked messages visible again at once (else they return after the peek visibility)."""
        for start in range(0, len(receipts), MAX_BATCH_ENTRIES):
            chunk = receipts[start : start + MAX_BATCH_ENTRIES]
            try:
                response = self._sqs().change_message_visibility_batch(
                    QueueUrl=queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                        for i, r in enumerate(chunk)
                    ],
                )
            except Exception:  # the messages reappear after the peek visibility anyway
                log.warning("could not reveal peeked dead letters", exc_info=True)
                continue
            if response.get("Failed"):
                log.warning("could not reveal %d peeked dead letters", len(response["Failed"]))

    def depth(self) -> int:
        """Messages waiting, in flight and delayed (SQS's approximate counts)."""
        attributes = self._sqs().get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=list(_COUNT_ATTRIBUTES)
        )["Attributes"]
        return sum(int(attributes.get(name, 0)) for name in _COUNT_ATTRIBUTES)

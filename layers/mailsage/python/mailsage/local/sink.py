"""The built-in SMTP sink: accepts mail on 127.0.0.1 and keeps each message as an .eml file.

It also plays the recipient's side of delivery feedback, so every outcome can be exercised without
a real relay or SES. By the recipient's local part:
- `bounce...@`: refused at RCPT with 550 5.1.1 (a hard bounce: the address gets suppressed);
- `defer...@`: refused with 451 (transient: retried, then given up);
- `complain...@`: accepted, delivered, then reported as a complaint;
- anything else: accepted and delivered.
With `notify`, each accepted message yields delivery reports (domain/delivery_reports.py: delivered,
and complained for `complain...@`), as JSON objects, that the local runtime feeds to the real events
function, as SES's event destination does on AWS: the same reports the SES adapter makes, no SES
format in between. The message is found by its `Feedback-ID` header, which MailSage signs for the
one recipient it is sent to (domain/feedback_id.py). With `accepted`, the sink hands over only the
header block, MAIL FROM and recipients of each message, and the caller builds the notifications
(`notifications()`) off the SMTP thread, when it likes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from functools import lru_cache
from pathlib import Path
from typing import Any

from mailsage.domain.delivery_reports import DeliveryReport, ReportOutcome
from mailsage.domain.feedback_id import FeedbackIds
from mailsage.local.private_files import private_dir, write_private

log = logging.getLogger("mailsage.local")

# RFC 3463 4.3.1: the mail system is out of storage (a full disk, a quota), which is temporary.
STORAGE_FULL = "452 4.3.1 Insufficient system storage"
LOCAL_ERROR = "451 4.3.0 Local error in processing"

Notify = Callable[[dict[str, Any]], None]
# What the sink knows of an accepted message: its header block, MAIL FROM, the accepted recipients.
Accepted = Callable[[bytes, str, list[str]], None]


def notifying(notify: Notify) -> Accepted:
    """An `accepted` hook that builds each message's notifications at once and passes them on."""

    def accepted(headers: bytes, mail_from: str, recipients: list[str]) -> None:
        for notification in notifications(headers, mail_from, recipients):
            notify(notification)

    return accepted


class OutboxHandler:
    def __init__(self, outbox: Path, accepted: Accepted | None = None) -> None:
        self.outbox = outbox
        self.accepted = accepted
        private_dir(outbox)  # every message received, readable by its owner only
        for tmp in outbox.glob(".*.tmp"):  # a message being written when a sink was killed
            with contextlib.suppress(OSError):
                tmp.unlink()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        local = address.split("@", 1)[0].lower()
        if local.startswith("bounce"):
            return "550 5.1.1 mailbox unavailable (sink: bounce)"
        if local.startswith("defer"):
            return "451 4.3.0 try again later (sink: defer)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        tmp, eml = self.outbox / f".{name}.tmp", self.outbox / f"{name}.eml"
        try:
            # Written under a temporary name and renamed, so a reader never sees half a message.
            write_private(tmp, data)
            os.replace(tmp, eml)
            if self.accepted is not None:  # keeps its notifications before the 250 (local.notification_spool)
                end = data.find(b"\r\n\r\n")
                self.accepted(data if end < 0 else data[:end], envelope.mail_from, list(envelope.rcpt_tos))
        except Exception as exc:
            # Nothing of a message that was not accepted is kept: no empty or partial file, no
            # notification. A full disk is the sink's trouble, not the message's: a transient
            # reply, so the sender tries again later instead of failing accepted mail.
            for path in (tmp, eml):
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                log.error("sink: could not keep a message (%s); answered 452", exc)
                return STORAGE_FULL
            log.exception("sink: could not keep a message; answered 451")
            return LOCAL_ERROR
        return "250 2.0.0 accepted"


def notifications(
    data: bytes, mail_from: str, recipients: list[str], feedback_ids: FeedbackIds | None = None
) -> list[dict[str, Any]]:
    """The delivery reports of an accepted message as JSON objects (what the events queue carries);
    see `reports`."""
    return [report.to_dict() for report in reports(data, mail_from, recipients, feedback_ids)]


def reports(
    data: bytes, mail_from: str, recipients: list[str], feedback_ids: FeedbackIds | None = None
) -> list[DeliveryReport]:
    """Delivery reports for an accepted message (`data`: the message or just its header block):
    delivered, and complained for a `complain...@` recipient. The message is the one its
    `Feedback-ID` names, verified with `feedback_ids` (by default, the signing key of this
    environment's data directory, the sender's)."""
    # compat32 on the header block only: ten times faster than the default policy, and the sink
    # runs this for every message it accepts.
    end = data.find(b"\r\n\r\n")
    headers = BytesHeaderParser(policy=compat32).parsebytes(data if end < 0 else data[:end])
    found = headers.get_all("Feedback-ID") or []
    ids = feedback_ids or _local_feedback_ids()
    # MailSage sends one message per recipient with one signed Feedback-ID made for that
    # recipient: anything else (no key, two Feedback-IDs, one forged, copied from another
    # message or for another address) names no message that was sent here.
    if ids is None or len(found) != 1 or len(recipients) != 1:
        return []
    ref = ids.read(str(found[0]), recipients[0])
    if ref is None:
        return []
    delivered = DeliveryReport(
        outcome=ReportOutcome.DELIVERED,
        account_id=ref.account_id,
        message_id=ref.message_id,
        job_id=ref.job_id,
        recipient=recipients[0],
        from_addr=str(headers.get("From", mail_from)),
        subject=str(make_header(decode_header(str(headers.get("Subject", ""))))),
        occurred_at=time.time(),
    )
    found_reports = [delivered]
    complained = [r for r in recipients if r.split("@", 1)[0].lower().startswith("complain")]
    if complained:
        found_reports.append(
            replace(
                delivered,
                outcome=ReportOutcome.COMPLAINED,
                recipient=complained[0],
                detail="complaint: abuse",
            )
        )
    return found_reports


def _local_feedback_ids() -> FeedbackIds | None:
    # Settings cost milliseconds to read, the sink sees thousands of messages a second: one key
    # per environment (tests change it between runs).
    return _feedback_ids(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("MAILSAGE_"))))


@lru_cache(maxsize=8)
def _feedback_ids(environment: tuple[tuple[str, str], ...]) -> FeedbackIds | None:
    from mailsage.settings import CommonSettings
    from mailsage.wiring import signer

    key = signer(CommonSettings())
    return FeedbackIds(key) if key is not None else None


class SmtpSink:
    def __init__(
        self,
        outbox: Path,
        port: int,
        host: str = "127.0.0.1",
        notify: Notify | None = None,
        accepted: Accepted | None = None,
    ) -> None:
        from aiosmtpd.controller import Controller

        self.outbox = outbox
        if accepted is None and notify is not None:
            accepted = notifying(notify)
        self.controller = Controller(
            OutboxHandler(outbox, accepted), hostname=host, port=port, ready_timeout=10
        )

    @property
    def port(self) -> int:
        return self.controller.port

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def messages(self) -> list[Path]:
        return sorted(self.outbox.glob("*.eml"))

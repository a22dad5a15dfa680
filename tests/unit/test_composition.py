"""The composer: one message per recipient, the same bytes every time it is composed (what the
sender sent is what a lookup shows), with a Date that comes from the stored message and job."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime

from mailsage.domain.composition import Composer, origination_time
from mailsage.domain.models import Content, Job, JobKind, JobState, Message
from mailsage.domain.rendering import CompiledContent
from mailsage.domain.tracking import Signer, TrackedLinks

ACCEPTED = 1_790_000_000.0


def job(**content: object) -> Job:
    fields: dict = {
        "subject": "Hi {{ name }}",
        "text": "Hello {{ name }}",
        "html": '<html><body><a href="https://example.com/a">a</a></body></html>',
        "from_addr": "Example <hello@example.com>",
        "attachments": [
            {"file_name": "a.txt", "content_type": "text/plain", "data": "YQ==", "disposition": "attachment"}
        ],
        "tracking": {"open": True, "click": True},
        "unsubscribe": True,
        **content,
    }
    return Job("job_1", "acc_1", JobKind.BATCH, JobState.RUNNING, Content(**fields), 1, ACCEPTED, ACCEPTED)


def message(message_id: str = "5f0c7a4e-0000-4000-8000-000000000001") -> Message:
    return Message(
        message_id, "job_1", "acc_1", 0, 0, "ann@example.com", "Ann", {"name": "Ann"}, created_at=ACCEPTED
    )


def composer() -> Composer:
    return Composer("mailsage.test", TrackedLinks(Signer(b"k" * 32), "https://mail.example.test"))


def test_composing_twice_gives_the_same_bytes() -> None:
    # Given a message with two multipart levels, tracking and List-Unsubscribe
    the_job, the_message = job(), message()

    # When it is composed twice, by two composers (the sender's, a lookup's), content compiled twice
    first = composer().compose(the_job, the_message, CompiledContent.of(the_job.content))
    second = composer().compose(the_job, the_message, CompiledContent.of(the_job.content))

    # Then the bytes are the same, and they carry what the sender adds
    assert first == second
    assert b"\r\nFeedback-ID: " in first and b"\r\nList-Unsubscribe: <https://mail.example.test/u/" in first
    assert b"/t/o/" in first and b"/t/c/" in first


def test_two_messages_get_their_own_boundaries() -> None:
    the_job = job()
    one = composer().compose(the_job, message("id-1"), CompiledContent.of(the_job.content))
    two = composer().compose(the_job, message("id-2"), CompiledContent.of(the_job.content))
    boundaries = [set(re.findall(rb'boundary="([^"]+)"', data)) for data in (one, two)]
    assert len(boundaries[0]) == 2 and not boundaries[0] & boundaries[1]


def test_the_date_is_the_acceptance_or_the_scheduled_first_attempt_if_later() -> None:
    # Given a message accepted at ACCEPTED, once sent at once and once scheduled an hour later
    now, later = job(), job()
    later.first_attempt_at = ACCEPTED + 3600

    # Then Date says when each was due to go out
    assert origination_time(now, message()) == ACCEPTED
    assert origination_time(later, message()) == ACCEPTED + 3600
    data = composer().compose(later, message(), CompiledContent.of(later.content))
    date = message_from_bytes(data, policy=policy.default)["Date"]
    assert parsedate_to_datetime(str(date)).timestamp() == ACCEPTED + 3600

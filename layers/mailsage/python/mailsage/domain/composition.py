"""The one message a recipient is sent, composed from what is stored: the job's content rendered
with the message's variables, its HTML tracked (rewritten links, the open pixel), its headers
(the caller's, MailSage's ids, Feedback-ID, List-Unsubscribe), then MIME (domain/mime.py).

The sender composes it to send it; a message's GET composes it again to show it. Every input is
stored or derived from what is stored, so both give the same bytes:
- Date is when the message was due to go out: its acceptance, or its job's scheduled first attempt
  if that is later (RFC 5322's origination date: when the sender said it was ready to go); a
  retry resends the very same message rather than a newer Date;
- MIME boundaries are drawn from random numbers seeded with the message id (and still checked
  against the content, so that no part can contain one);
- tracking tokens and the Feedback-ID are deterministic seals of the ids (domain/sealing.py).
"""

from __future__ import annotations

import random

from mailsage.domain.feedback_id import FeedbackIds
from mailsage.domain.mailbox import message_id_header
from mailsage.domain.mime import build_message
from mailsage.domain.models import Job, Message
from mailsage.domain.rendering import CompiledContent, Rendered, Uncompilable
from mailsage.domain.tracking import TrackedLinks, unsubscribe_headers, wants


def origination_time(job: Job, message: Message) -> float | None:
    """The Date of the message: its acceptance, or its job's first attempt if that is later."""
    at = max(message.created_at or job.created_at, job.first_attempt_at or 0.0)
    return at if at > 0 else None  # None (now) only for records without any time


class Composer:
    """Composes the message of one recipient. `links` None: no public URL is configured, so no
    tracking, no List-Unsubscribe and no Feedback-ID (its signed token needs the tracking key).
    `message_id_domain` None: each Message-ID takes the sender's domain."""

    def __init__(self, message_id_domain: str | None = None, links: TrackedLinks | None = None) -> None:
        self.message_id_domain = message_id_domain
        self.links = links
        self.feedback_ids = FeedbackIds(links.signer) if links is not None else None

    def compose(self, job: Job, message: Message, content: CompiledContent | Uncompilable) -> bytes:
        """render() then build(): raises TemplateError or ValueError as they do."""
        return self.build(job, message, self.render(job, message, content))

    def render(self, job: Job, message: Message, content: CompiledContent | Uncompilable) -> Rendered:
        """The recipient's rendering, tracked. Raises TemplateError (this message only)."""
        return self._tracked(job, message, content.render(message.variables))

    def build(self, job: Job, message: Message, rendered: Rendered) -> bytes:
        """The RFC 5322 bytes. Raises ValueError for a header value MIME refuses (this message only)."""
        return build_message(
            rendered,
            from_addr=job.content.from_addr,
            to_email=message.email,
            to_name=message.name,
            reply_to=job.content.reply_to,
            message_id=message_id_header(message.id, job.content.from_addr, self.message_id_domain),
            headers=self.headers(job, message),
            attachments=job.content.attachments,
            date=origination_time(job, message),
            boundaries=random.Random(message.id),  # noqa: S311 - not a secret: only reproducible
        )

    def headers(self, job: Job, message: Message) -> dict[str, str]:
        headers = {
            **{k: v for k, v in job.content.headers.items() if k.lower() != "feedback-id"},
            "X-MailSage-Job-ID": job.id,
            "X-MailSage-Message-ID": message.id,
        }
        if self.feedback_ids is not None:
            # Feedback loops (complaint reports) and the built-in sink's notifications name the
            # message by this header, as mailbox providers' FBLs do: opaque and signed.
            headers["Feedback-ID"] = self.feedback_ids.header(
                job.account_id, job.id, message.id, message.email
            )
        # A List-Unsubscribe of the caller's own (their unsubscribe system) wins over ours: one
        # header, never two.
        own = any(name.lower() == "list-unsubscribe" for name in job.content.headers)
        if self.links is not None and job.content.unsubscribe and not own:
            url = self.links.unsubscribe_url(job.account_id, message.id, message.email)
            headers.update(unsubscribe_headers(url))
        return headers

    def _tracked(self, job: Job, message: Message, rendered: Rendered) -> Rendered:
        tracking = job.content.tracking
        opens, clicks = wants(tracking, "open"), wants(tracking, "click")
        if self.links is None or rendered.html is None or not (opens or clicks):
            return rendered
        html = self.links.rewrite_html(rendered.html, job.account_id, message.id, opens, clicks, None)
        return Rendered(rendered.subject, rendered.text, html, rendered.amp)

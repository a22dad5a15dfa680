"""Rendered content -> RFC 5322 bytes."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any

from mailsage.domain.rendering import Rendered


def build_message(
    rendered: Rendered,
    *,
    from_addr: str,
    to_email: str,
    to_name: str | None,
    reply_to: str | None,
    message_id: str,
    headers: dict[str, str] | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> bytes:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = from_addr
    msg["To"] = formataddr((to_name, to_email)) if to_name else to_email
    msg["Subject"] = rendered.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id
    if reply_to:
        msg["Reply-To"] = reply_to
    for key, value in (headers or {}).items():
        msg[key] = value
    if rendered.text is not None:
        msg.set_content(rendered.text)
        if rendered.html is not None:
            msg.add_alternative(rendered.html, subtype="html")
    else:
        msg.set_content(rendered.html or "", subtype="html")
    return msg.as_bytes()

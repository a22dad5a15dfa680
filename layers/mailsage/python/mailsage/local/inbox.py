"""The local inbox page of `mailsage serve` (`/inbox`): the mail the built-in sink received.

The page is for the developer at this machine, so it answers only a loopback client that named a
loopback host (a page elsewhere that rebinds its own name to 127.0.0.1 sends its own Host, and is
refused): 403 otherwise, even when the server listens on every address. Deleting takes a POST that
carries this server's token (a random value given to the page) from the page's own origin.

Messages are hostile input. The page never holds a message's HTML: the message view frames
`/inbox/messages/<id>/html` in an iframe `sandbox`ed without scripts, and that reply carries a CSP
that sandboxes it again, allows no script, no connection and no image but inline data (a remote
image would be the message's tracking pixel: viewing it here would count an open). Attachments and
the source are downloads, typed as opaque bytes, never rendered by the browser on this origin.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mailsage.domain.feedback_id import FeedbackIds, FeedbackRef
from mailsage.local.inbox_data import Outbox
from mailsage.settings import CommonSettings

INBOX_PATH = "/inbox"
ASSETS = Path(__file__).with_name("inbox_assets")
ASSET_TYPES = {"inbox.css": "text/css; charset=utf-8", "inbox.js": "text/javascript; charset=utf-8"}
_MESSAGE = re.compile(
    r"/inbox/messages/([0-9]{1,20}-[0-9a-f]{8})(?:/(html|source|attachments/([0-9]{1,4})))?"
)
_LOOPBACK_NAMES = frozenset({"localhost"})
CAMPAIGN_CACHE_SIZE = 10_000  # jobs whose campaign is remembered (it never changes)
log = logging.getLogger("mailsage.local")

# The page's own resources only; no inline script, no framing of the page by anything.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# A message's HTML: its inline styles and inline images, nothing that runs or reaches out.
MESSAGE_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
# Not no-referrer for the pages: with it, a browser posts the delete form with `Origin: null`.
_COMMON_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)


@dataclass(slots=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def is_inbox_path(path: str) -> bool:
    route = urlsplit(path).path
    return route == INBOX_PATH or route.startswith(INBOX_PATH + "/")


def loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def loopback_host(host: str) -> bool:
    """The Host header names this machine's loopback (a name, an IPv4 or a [IPv6], any port)."""
    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:  # a malformed Host ("[::1" without its bracket): not a loopback name
        return False
    return name in _LOOPBACK_NAMES or loopback(name)


def text_reply(status: int, message: str) -> Reply:
    headers = [("Content-Type", "text/plain; charset=utf-8"), *_COMMON_HEADERS]
    return Reply(status, headers, message.encode())


def json_reply(body: Any) -> Reply:
    headers = [("Content-Type", "application/json"), *_COMMON_HEADERS]
    return Reply(200, headers, json.dumps(body).encode())


def page_reply(html: str) -> Reply:
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Security-Policy", PAGE_CSP),
        ("X-Frame-Options", "DENY"),
        *_COMMON_HEADERS,
    ]
    return Reply(200, headers, html.encode())


def download_reply(payload: bytes, filename: str) -> Reply:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("._") or "download"
    headers = [
        ("Content-Type", "application/octet-stream"),
        ("Content-Disposition", f'attachment; filename="{safe[:100]}"'),
        ("Content-Security-Policy", "sandbox; default-src 'none'"),
        *_COMMON_HEADERS,
    ]
    return Reply(200, headers, payload)


class Inbox:
    """Answers every request under /inbox. The outbox and the store are reached only when a page is
    asked for, so a server nobody visits the inbox of pays nothing."""

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self.token = secrets.token_urlsafe(32)  # the delete form's; new at each start
        self._campaigns: dict[tuple[str, str], str] = {}

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(self.settings.data_dir / "outbox", self._feedback_ids, self._lookup)

    def answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes, client: str) -> Reply:
        """The reply to one request; `client` is the peer's address, `headers` the request's."""
        named = {name.lower(): value for name, value in headers.items()}
        try:
            return self._answer(method, target, named, body, client)
        except Exception:
            log.exception("the inbox failed to answer %s %s", method, urlsplit(target).path)
            return text_reply(500, "the inbox failed; the server's log says why")

    def _answer(self, method: str, target: str, headers: dict[str, str], body: bytes, client: str) -> Reply:
        if not loopback(client) or not loopback_host(headers.get("host", "")):
            return text_reply(403, "the inbox answers only on this machine's loopback (127.0.0.1)")
        split = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        if method == "POST":
            if split.path != INBOX_PATH + "/delete":
                return _not_allowed("GET", "only the inbox's delete takes a POST")
            return self._delete(headers, body)
        if method != "GET" or split.path == INBOX_PATH + "/delete":
            allowed = "POST" if split.path == INBOX_PATH + "/delete" else "GET"
            return _not_allowed(allowed, f"this inbox page takes {allowed}")
        return self._get(split.path, query)

    def _get(self, path: str, query: dict[str, str]) -> Reply:
        from mailsage.local import inbox_render as render

        q = query.get("q", "")[:200]
        if path in (INBOX_PATH, INBOX_PATH + "/"):
            rows, total = self.outbox.rows(q)
            return page_reply(render.list_page(rows, total, q, self.token))
        if path == INBOX_PATH + "/messages.json":
            rows, total = self.outbox.rows(q)
            return json_reply({"messages": [r.to_dict() for r in rows], "total": total, "query": q})
        if path.startswith(INBOX_PATH + "/assets/"):
            return self._asset(path.rsplit("/", 1)[1])
        found = _MESSAGE.fullmatch(path)
        if found is None:
            return text_reply(404, "no such inbox page")
        return self._message(found.group(1), found.group(2) or "", found.group(3))

    def _message(self, message_id: str, view: str, attachment: str | None) -> Reply:
        from mailsage.local import inbox_render as render

        if view == "source":
            raw = self.outbox.raw(message_id)
            return download_reply(raw, f"{message_id}.eml") if raw is not None else _gone()
        detail = self.outbox.detail(message_id)
        if detail is None:
            return _gone()
        if view == "html":
            headers = [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Security-Policy", MESSAGE_CSP),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),  # a link followed in the message tells nothing
            ]
            return Reply(200, headers, (detail.html or "").encode("utf-8", "replace"))
        if attachment is not None:
            index = int(attachment)
            if not 0 <= index < len(detail.attachments):
                return text_reply(404, "the message has no such attachment")
            part = detail.attachments[index]
            return download_reply(part.payload, part.filename)
        return page_reply(render.message_page(detail, self.token))

    def _asset(self, name: str) -> Reply:
        if name not in ASSET_TYPES:
            return text_reply(404, "no such asset")
        headers = [("Content-Type", ASSET_TYPES[name]), *_COMMON_HEADERS]
        return Reply(200, headers, (ASSETS / name).read_bytes())

    def _delete(self, headers: dict[str, str], body: bytes) -> Reply:
        refused = self._forged(headers, body)
        if refused:
            return text_reply(403, refused)
        deleted = self.outbox.delete_all()
        if "application/json" in headers.get("accept", ""):
            return json_reply({"deleted": deleted})
        return Reply(303, [("Location", INBOX_PATH), *_COMMON_HEADERS], b"")

    def _forged(self, headers: dict[str, str], body: bytes) -> str:
        """Why a delete is refused ("" when it is not): another site's page can make a browser POST
        here, but cannot read the token off the inbox page, nor send its own Origin as ours."""
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{headers.get('host', '')}":
            return "a delete must come from the inbox page itself (its Origin is another site's)"
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return "a delete must come from the inbox page itself (the browser says another site sent it)"
        form = parse_qs(body.decode("ascii", "replace"))
        token = headers.get("x-inbox-token") or (form.get("token") or [""])[0]
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return "a delete needs the token of the inbox page; reload the page and try again"
        return ""

    def _feedback_ids(self) -> FeedbackIds | None:
        return self._verifier

    @cached_property
    def _verifier(self) -> FeedbackIds | None:
        from mailsage.wiring import signer

        key = signer(self.settings)
        return FeedbackIds(key) if key is not None else None

    def _lookup(self, ref: FeedbackRef) -> tuple[str, str]:
        """The campaign (kept: a job's never changes) and current status of a message."""
        from mailsage.wiring import backends

        store = backends(self.settings).store
        message = store.get_message(ref.account_id, ref.message_id)
        key = (ref.account_id, ref.job_id)
        if key not in self._campaigns:
            if len(self._campaigns) >= CAMPAIGN_CACHE_SIZE:
                self._campaigns.clear()
            job = store.get_job(ref.account_id, ref.job_id, with_counts=False)
            self._campaigns[key] = (job.campaign_id or "") if job is not None else ""
        return self._campaigns[key], str(message.status) if message is not None else ""


def _not_allowed(allowed: str, message: str) -> Reply:
    reply = text_reply(405, message)
    reply.headers.append(("Allow", allowed))
    return reply


def _gone() -> Reply:
    return text_reply(404, "no such message (deleted?)")

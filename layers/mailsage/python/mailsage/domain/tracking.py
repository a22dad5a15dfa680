"""Open and click tracking and one-click unsubscribe (RFC 8058): sealed URLs of the API.

At send time the sender rewrites a message's HTML: each http(s) link points at `/t/c/{token}`
(which redirects to the original), and a 1x1 pixel at `/t/o/{token}` goes before `</body>`. Bulk
mail carries `List-Unsubscribe: <{public_url}/u/{token}>` and `List-Unsubscribe-Post:
List-Unsubscribe=One-Click`. A token is its fields sealed with the signing key (domain/sealing.py):
recipients cannot read the account, message or address in it, and nobody can forge a click to another
URL (no open redirect) or unsubscribe another address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from mailsage.domain.sealing import Sealer

_MAC_BYTES = 16  # the truncated HMAC of the first token format, still accepted


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Seals and opens token fields. Tokens of the first format (base64url JSON fields, a dot, a
    truncated HMAC: readable by anyone) are in mail already sent, so they still verify."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._sealer = Sealer(key, b"tracking")

    def sign(self, fields: list[str]) -> str:
        return self._sealer.seal(fields)

    def sealer(self, purpose: bytes) -> Sealer:
        """A sealer of the same key for another kind of token (its tokens and these never mix)."""
        return Sealer(self._key, purpose)

    def verify(self, token: str) -> list[str] | None:
        """The fields of a token this key made; None for anything else."""
        if "." in token:  # never in a sealed token (base64url has no dot)
            return self._verify_legacy(token)
        return self._sealer.unseal(token)

    def _verify_legacy(self, token: str) -> list[str] | None:
        payload_text, _, mac_text = token.partition(".")
        try:
            payload, mac = _unb64(payload_text), _unb64(mac_text)
        except (ValueError, TypeError):
            return None
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        if not hmac.compare_digest(mac, expected):
            return None
        try:
            fields = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            return None
        return fields


def is_safe_redirect(url: str) -> bool:
    """A click may only lead to an http(s) URL without control characters: one with CR/LF would
    split the redirect's headers, and other schemes (javascript:, data:) are not links to follow."""
    head = url[:8].lower()
    if not (head.startswith("http://") or head.startswith("https://")):
        return False
    return not any(unicodedata.category(c) == "Cc" for c in url)


def location_header(url: str) -> str:
    """`url` as an ASCII header value: non-ASCII characters percent-encoded (UTF-8), as browsers do."""
    if url.isascii():
        return url
    return "".join(c if c.isascii() else "".join(f"%{b:02X}" for b in c.encode()) for c in url)


# token kinds
OPEN, CLICK, UNSUBSCRIBE = "o", "c", "u"

# An <a> tag's first http(s) href. The second branch swallows the rest of a tag that has none: a
# later `<a` before the same `>` cannot have one either, so the search moves on in linear time
# (without it, every `<a` rescans to the next `>`, or to the end: quadratic on a run of `<a `).
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2|<a\b[^>]*""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)

# The smallest transparent GIF: what the open pixel answers.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@dataclass(slots=True, frozen=True)
class TrackedLinks:
    """Builds the tracking and unsubscribe URLs of one message."""

    signer: Signer
    public_url: str  # the API's base URL, no trailing slash

    def open_url(self, account_id: str, message_id: str) -> str:
        return f"{self.public_url}/t/o/{self.signer.sign([OPEN, account_id, message_id])}"

    def click_url(self, account_id: str, message_id: str, url: str) -> str:
        return f"{self.public_url}/t/c/{self.signer.sign([CLICK, account_id, message_id, url])}"

    def unsubscribe_url(self, account_id: str, message_id: str, email: str) -> str:
        return f"{self.public_url}/u/{self.signer.sign([UNSUBSCRIBE, account_id, message_id, email])}"

    def rewrite_html(
        self, body: str, account_id: str, message_id: str, opens: bool, clicks: bool, skip: str | None
    ) -> str:
        """The HTML with tracked links (every http(s) href but `skip`) and/or the open pixel."""
        if clicks:

            def tracked(match: re.Match[str]) -> str:
                if match.group(3) is None:
                    return match.group(0)
                url = html.unescape(match.group(3))
                if url == skip or not is_safe_redirect(url):
                    return match.group(0)
                new = self.click_url(account_id, message_id, url)
                return f"{match.group(1)}{match.group(2)}{new}{match.group(2)}"

            body = _HREF.sub(tracked, body)
        if opens:
            pixel = (
                f'<img src="{self.open_url(account_id, message_id)}" width="1" height="1" alt=""'
                ' style="display:block;border:0;width:1px;height:1px" />'
            )
            ends = list(_BODY_END.finditer(body))
            if ends:
                at = ends[-1].start()
                body = body[:at] + pixel + body[at:]
            else:
                body += pixel
        return body


def unsubscribe_headers(url: str) -> dict[str, str]:
    """RFC 8058: a one-click POST to `url` unsubscribes; mailbox providers show their own button."""
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def wants(tracking: dict[str, Any] | None, kind: str) -> bool:
    """tracking settings {"open": bool, "click": bool}; missing or None means off."""
    return bool(tracking and tracking.get(kind))


_BOT = re.compile(r"bot|crawler|spider|scanner|preview|monitor|curl|wget|python-requests", re.IGNORECASE)


def is_bot(user_agent: str | None) -> bool:
    """A best guess from the user agent: security scanners and link previewers fetch mail too."""
    return not user_agent or bool(_BOT.search(user_agent))

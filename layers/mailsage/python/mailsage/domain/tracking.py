"""Open and click tracking and one-click unsubscribe (RFC 8058): signed URLs of the API.

At send time the sender rewrites a message's HTML: each http(s) link points at `/t/c/{token}`
(which redirects to the original), and a 1x1 pixel at `/t/o/{token}` goes before `</body>`. Bulk
mail carries `List-Unsubscribe: <{public_url}/u/{token}>` and `List-Unsubscribe-Post:
List-Unsubscribe=One-Click`. A token is its fields, base64url JSON, and a truncated HMAC-SHA256 of
them: nobody can forge a click to another URL (no open redirect) or unsubscribe another address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
from dataclasses import dataclass
from typing import Any

_MAC_BYTES = 16  # 128 bits: plenty against forgery, short URLs


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, fields: list[str]) -> str:
        payload = json.dumps(fields, separators=(",", ":")).encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        return f"{_b64(payload)}.{_b64(mac)}"

    def verify(self, token: str) -> list[str] | None:
        """The fields of a token this key signed; None for anything else."""
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


# token kinds
OPEN, CLICK, UNSUBSCRIBE = "o", "c", "u"

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)
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
                url = html.unescape(match.group(3))
                if url == skip:
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

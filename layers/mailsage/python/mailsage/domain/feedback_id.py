"""The `Feedback-ID` header: names the message to complaint feedback loops and to the built-in
sink, opaque to the recipient and verifiable with the signing key alone (no lookup).

    Feedback-ID: <token>:mailsage

The token is base64url(tag || ciphertext): the plaintext is "message_id job_id account_id"; the
tag is a truncated HMAC-SHA256 of the recipient and the plaintext (so the ids cannot be forged,
and a header copied into a message to another address does not verify); the ciphertext is the
plaintext XORed with an HMAC-SHA256 keystream keyed by a second sub-key and the tag as nonce
(a synthetic-IV construction: deterministic, so a retried message keeps its Feedback-ID).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from mailsage.domain.tracking import Signer

SENDER_ID = "mailsage"  # the last field of a Feedback-ID: who sent it (Gmail's format)
_TAG_BYTES = 16


@dataclass(slots=True, frozen=True)
class FeedbackRef:
    account_id: str
    job_id: str
    message_id: str


class FeedbackIds:
    def __init__(self, signer: Signer) -> None:
        # Sub-keys: the signer's MAC of a fixed label is a secret only the key's holder can compute.
        self._mac_key = signer.sign(["feedback-id", "mac"]).encode()
        self._stream_key = signer.sign(["feedback-id", "stream"]).encode()

    def header(self, account_id: str, job_id: str, message_id: str, recipient: str) -> str:
        plain = " ".join((message_id, job_id, account_id)).encode()
        tag = self._tag(recipient, plain)
        token = base64.urlsafe_b64encode(tag + _xor(plain, self._stream(tag, len(plain))))
        return f"{token.rstrip(b'=').decode()}:{SENDER_ID}"

    def read(self, value: str, recipient: str) -> FeedbackRef | None:
        """The message a Feedback-ID names, if this key made it for this recipient; else None."""
        token, _, sender = value.strip().rpartition(":")
        if sender != SENDER_ID or not token or not token.isascii():
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            return None
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != token:
            return None  # one value per message: no second spelling of the same bytes
        tag, sealed = raw[:_TAG_BYTES], raw[_TAG_BYTES:]
        plain = _xor(sealed, self._stream(tag, len(sealed)))
        if len(tag) < _TAG_BYTES or not hmac.compare_digest(tag, self._tag(recipient, plain)):
            return None
        fields = plain.decode().split(" ")
        if len(fields) != 3 or not all(fields):
            return None
        message_id, job_id, account_id = fields
        return FeedbackRef(account_id, job_id, message_id)

    def _tag(self, recipient: str, plain: bytes) -> bytes:
        data = recipient.strip().lower().encode() + b"\0" + plain
        return hmac.new(self._mac_key, data, hashlib.sha256).digest()[:_TAG_BYTES]

    def _stream(self, nonce: bytes, size: int) -> bytes:
        blocks = (
            hmac.new(self._stream_key, nonce + i.to_bytes(4, "big"), hashlib.sha256).digest()
            for i in range(-(-size // 32))
        )
        return b"".join(blocks)[:size]


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream, strict=True))

"""Opaque tokens that only the key can read and only the key can make.

`Sealer(key).seal(fields)` turns a few strings into a URL- and header-safe token; `unseal(token)`
gives the fields back, or None for anything this key did not seal. The fields (an account id, a
message id, an address) are encrypted, so a recipient who sees a token learns nothing from it.

The construction is SIV-style deterministic authenticated encryption built from HMAC-SHA256 only
(the standard library; no native dependency in the Lambda layer, nothing to import at cold start):
    tag        = HMAC(k_mac, associated || payload)[:16] (the synthetic IV and the MAC at once)
    ciphertext = payload XOR HMAC(k_enc, tag || counter) blocks
    token      = base64url(tag || ciphertext)
Two keys are derived from the one secret per `purpose`, so tokens made for one use never verify for
another; `associated` data (e.g. the recipient a token is made for) is authenticated but not
carried, so the token verifies only where the same data is given back. Deterministic: the same fields give the same token (which reveals only that two tokens are
equal; they name the same thing anyway).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

TAG_BYTES = 16  # 128 bits: forgery odds of 2**-128, and a unique IV per distinct payload
_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")
_SEPARATOR = "\x00"  # fields are text; NUL never belongs in an id, an address or a URL


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not _ALPHABET.fullmatch(text):  # b64decode would skip stray characters silently
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sealer:
    __slots__ = ("_mac_key", "_enc_key")

    def __init__(self, key: bytes, purpose: bytes = b"tokens") -> None:
        self._mac_key = hmac.new(key, b"mailsage seal mac " + purpose, hashlib.sha256).digest()
        self._enc_key = hmac.new(key, b"mailsage seal enc " + purpose, hashlib.sha256).digest()

    def _keystream(self, tag: bytes, size: int) -> bytes:
        blocks = (size + 31) // 32
        return b"".join(
            hmac.new(self._enc_key, tag + i.to_bytes(4, "big"), hashlib.sha256).digest()
            for i in range(blocks)
        )[:size]

    @staticmethod
    def _xor(data: bytes, stream: bytes) -> bytes:
        return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")

    def _tag(self, associated: bytes, payload: bytes) -> bytes:
        data = len(associated).to_bytes(4, "big") + associated + payload
        return hmac.new(self._mac_key, data, hashlib.sha256).digest()[:TAG_BYTES]

    def seal(self, fields: list[str], associated: bytes = b"") -> str:
        """The token of `fields` (strings without NUL)."""
        if any(_SEPARATOR in field for field in fields):
            raise ValueError("a sealed field cannot contain NUL")
        payload = _SEPARATOR.join(fields).encode()
        tag = self._tag(associated, payload)
        return _b64(tag + self._xor(payload, self._keystream(tag, len(payload))))

    def unseal(self, token: str, associated: bytes = b"") -> list[str] | None:
        """The fields of a token this key sealed for this purpose (and `associated`); else None."""
        try:
            raw = _unb64(token)
        except (ValueError, binascii.Error):
            return None
        if len(raw) < TAG_BYTES or _b64(raw) != token:  # one spelling per token
            return None
        tag, ciphertext = raw[:TAG_BYTES], raw[TAG_BYTES:]
        payload = self._xor(ciphertext, self._keystream(tag, len(ciphertext)))
        if not hmac.compare_digest(tag, self._tag(associated, payload)):
            return None
        try:
            return payload.decode().split(_SEPARATOR)
        except UnicodeDecodeError:  # cannot happen for a genuine tag; kept total anyway
            return None

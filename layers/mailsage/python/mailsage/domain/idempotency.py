"""Idempotency keys, without HTTP: which requests honour one, the fingerprint of a request, and
what a request carrying a key does given what the store remembers of that key.

The rule: every POST honours `Idempotency-Key` (it creates something: a job, a template, a
message, a suppression), except the action routes that act on an existing resource
(`.../control`, `.../preview`). Other methods ignore the header.

A key is remembered per account for `ttl_seconds` after its first request. A request matches the
remembered one on its fingerprint: method, path and the SHA-256 of its body in canonical JSON
(keys sorted, no insignificant whitespace), so that re-serializing the same payload differently is
still the same request; a body that is not JSON is hashed as sent.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from mailsage.domain.models import IdempotencyRecord, IdempotencyState
from mailsage.ports import Store

MAX_KEY_LENGTH = 255
# Last path segments of the POST routes that do not create anything.
ACTION_SEGMENTS = frozenset({"control", "preview"})
# Advertised to a request that finds its key in progress: creations take well under a second.
RETRY_AFTER_SECONDS = 1


def applies(method: str, path: str) -> bool:
    """Whether a request with this method and path honours an Idempotency-Key header."""
    return method.upper() == "POST" and path.rstrip("/").rsplit("/", 1)[-1] not in ACTION_SEGMENTS


def key_problem(key: str) -> str | None:
    """Why `key` is not a usable Idempotency-Key, or None."""
    if not key.strip():
        return "the Idempotency-Key header is empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"the Idempotency-Key header is {len(key)} characters; the limit is {MAX_KEY_LENGTH}"
    return None


def canonical_body(body: str | bytes | None) -> bytes:
    raw = body.encode() if isinstance(body, str) else (body or b"")
    if not raw.strip():
        return b""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint(method: str, path: str, body: str | bytes | None) -> str:
    digest = hashlib.sha256(canonical_body(body)).hexdigest()
    return f"{method.upper()} {path} sha256:{digest}"


def is_stored(status: int) -> bool:
    """Whether a reply with this status is remembered for replays. Server errors are not (the
    request may run again), nor is 429: being throttled is not the outcome of the request."""
    return status < 500 and status != 429


# What a request carrying a key does.
@dataclass(slots=True, frozen=True)
class Execute:
    """The key is new (or expired, or released): run the request, then finish or release."""


@dataclass(slots=True, frozen=True)
class Replay:
    """The same request completed: answer with its stored reply."""

    record: IdempotencyRecord


@dataclass(slots=True, frozen=True)
class InProgress:
    """The same request is still running: try again after `retry_after` seconds."""

    retry_after: int = RETRY_AFTER_SECONDS


@dataclass(slots=True, frozen=True)
class Mismatch:
    """The key was used for a different request (method, path or body)."""


Outcome = Execute | Replay | InProgress | Mismatch


def decide(existing: IdempotencyRecord | None, request_fingerprint: str) -> Outcome:
    """What to do given the live record of the key (None: this request now owns the key)."""
    if existing is None:
        return Execute()
    if existing.fingerprint != request_fingerprint:
        return Mismatch()
    if existing.state == "done" and existing.status is not None:
        return Replay(existing)
    return InProgress()


class IdempotencyService:
    def __init__(self, store: Store, ttl_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    def begin(self, account_id: str, key: str, request_fingerprint: str) -> Outcome:
        """Claim the key for this request (atomically, in the store) or say why not."""
        now = self.clock()
        record = IdempotencyRecord(
            account_id=account_id,
            key=key,
            fingerprint=request_fingerprint,
            state=IdempotencyState.IN_PROGRESS,
            created_at=now,
            expires_at=now + self.ttl_seconds,
        )
        return decide(self.store.begin_idempotent(record), request_fingerprint)

    def finish(self, account_id: str, key: str, status: int, body: str, headers: dict[str, str]) -> None:
        self.store.finish_idempotent(account_id, key, status, body, headers)

    def release(self, account_id: str, key: str) -> None:
        self.store.release_idempotent(account_id, key)

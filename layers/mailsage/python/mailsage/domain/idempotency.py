"""Idempotency keys as records: what a request carrying a key does, given what the store
remembers of that key. Which HTTP requests honour a key and how they are fingerprinted is the
API's business (`mailsage.api.idempotency`); here a request is its account, key and fingerprint.

A key is remembered per account for `ttl_seconds` after its first request. A request matches the
remembered one on its fingerprint; the same key with another fingerprint is a mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsage.domain.clock import Clock, system_clock
from mailsage.domain.models import IdempotencyRecord, IdempotencyState
from mailsage.ports import IdempotencyStore

# Advertised to a request that finds its key in progress: creations take well under a second.
RETRY_AFTER_SECONDS = 1


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
    if existing.state == IdempotencyState.DONE and existing.status is not None:
        return Replay(existing)
    return InProgress()


class IdempotencyService:
    def __init__(self, store: IdempotencyStore, ttl_seconds: float, clock: Clock = system_clock) -> None:
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

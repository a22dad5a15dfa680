"""Per-account request limits of the API: each account may make `rate` requests a second, `burst`
at once, whichever api process (Lambda) answers it.

The state per account is a generic cell rate algorithm (GCRA) in the shared `PacingStore`: `tat`,
when the account's bucket would be full again. It is changed by compare-and-set only, so concurrent
processes never hand out the same request twice.

Every shared write costs (a DynamoDB write unit on AWS), so a process that serves an account steadily
takes a small block of tokens in one write and hands them out itself for at most `HOLD_SECONDS`; a
block grows (doubling, up to `BLOCK_SECONDS` of the rate) only while the previous one was used up
within its time, so sporadic traffic costs one write a request and takes nothing it does not use.
Tokens of a block that expired unused are given back in the account's next write. A process never
hands out more than the bucket granted it; the tokens it holds may make the others' replies come a
little earlier (at most one block per process). A process that was refused for an account refuses
its further requests itself until a token is due back, so a client hammering past its limit costs
the store nothing more.

When the store fails (throttled, unavailable, locked) the request is let through: the limit keeps
accounts fair; it must not take the API down. The process then leaves the store alone for
`SKIP_SECONDS`, so that a locked database or a throttled table does not add its timeouts and
retries to every request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from mailsage.domain.clock import Clock, system_clock
from mailsage.ports import PacingState, PacingStore

log = logging.getLogger(__name__)

# Its own prefix: provider pacing keys are "rate:{route}" and "connections:{route}".
KEY_PREFIX = "api-account:"
BLOCK_SECONDS = 0.25  # a block is at most this much of the rate
HOLD_SECONDS = 0.5  # a process hands out a block's tokens for at most this long after taking it
MAX_TRACKED = 10_000  # accounts a process remembers blocks of before forgetting expired ones
SKIP_SECONDS = 5.0  # after a store failure, requests go through uncounted for this long
WARN_EVERY_SECONDS = 60.0  # while the store fails, one warning a minute per process
_EPSILON = 1e-4  # float slack when counting whole tokens and seconds (epoch floats: ~1e-7 s)


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """What an account may do: `rate` requests per second, `burst` at once (rate 0: no limit)."""

    rate: float
    burst: int

    @property
    def enabled(self) -> bool:
        return self.rate > 0 and self.burst > 0

    @property
    def window(self) -> int:
        """Whole seconds an empty bucket takes to fill (at least 1)."""
        return max(1, math.ceil(self.burst / self.rate))


@dataclass(frozen=True, slots=True)
class Quota:
    """The outcome of one request: admitted or not, what is left and when the bucket fills again
    (admitted), or how long until one more request is admitted (refused)."""

    allowed: bool
    policy: RatePolicy
    remaining: int
    reset_seconds: int  # admitted: until the bucket is full; refused: the same as retry_after
    retry_after: int = 0  # refused: whole seconds, at least 1


@dataclass(frozen=True, slots=True)
class Taken:
    """What one shared write gave: `count` tokens (0: refused), what the bucket still holds, and
    seconds until it is full again (refused: until one token is back)."""

    count: int
    remaining: int
    seconds: float


def take(
    state: PacingState | None, now: float, policy: RatePolicy, want: int, refund: int = 0
) -> tuple[PacingState | None, Taken]:
    """The pure step: give back `refund` tokens, then take up to `want` (at least one, or none)."""
    interval = 1.0 / policy.rate
    capacity = policy.burst * interval
    tat = max(float((state or {}).get("tat", now)) - refund * interval, now)
    available = math.floor((now + capacity - tat) / interval + _EPSILON)
    if available < 1:
        wait = tat + interval - capacity - now
        return ({"tat": tat} if refund else None), Taken(0, 0, max(wait, 0.0))
    count = min(max(1, want), available)
    tat += count * interval
    return {"tat": tat}, Taken(count, available - count, tat - now)


@dataclass(slots=True)
class _Block:
    """This process's tokens of one account."""

    held: int = 0
    until: float = 0.0  # hand none out after this
    size: int = 1  # tokens the last write asked for
    remaining: int = 0  # what the shared bucket held after that write
    full_at: float = 0.0  # when the shared bucket is full again, as of that write
    refused_until: float = 0.0  # refused by the store: no token before this, as of that write


class AccountRateLimiter:
    """Admits or refuses each request of an account against `policy`; one per process (its blocks
    are this process's), safe to use from several threads."""

    def __init__(self, store: PacingStore, policy: RatePolicy, clock: Clock = system_clock) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.most = (
            max(1, min(policy.burst, math.floor(policy.rate * BLOCK_SECONDS))) if policy.enabled else 1
        )
        self._blocks: dict[str, _Block] = {}
        self._lock = threading.Lock()
        self._warned_at = -math.inf
        self._skip_until = -math.inf  # the store failed: count nothing before this

    def admit(self, account_id: str) -> Quota | None:
        """Count one request of `account_id`: its quota (refused or not), or None when nothing was
        counted (no limit, or the store failed and the request goes through)."""
        if not self.policy.enabled:
            return None
        now = self.clock()
        if now < self._skip_until:
            return None
        with self._lock:
            local = self._from_block(account_id, now)
            if local is not None:
                return local
            want, refund = self._next_block(account_id, now)
        # The time is read inside the compare-and-set, not before it: a write that waited for the
        # store's lock (a busy SQLite file, a retried DynamoDB call) must not compare an old "now"
        # with a bucket that others moved on meanwhile, which would refuse a request under its limit.
        at: list[float] = []

        def change(state: PacingState | None) -> tuple[PacingState | None, Taken]:
            at.append(self.clock())
            return take(state, at[-1], self.policy, want, refund)

        try:
            taken = self.store.change_pacing(KEY_PREFIX + account_id, change)
        except Exception as exc:  # the store's own errors, whatever the adapter: fail open
            self._skip_until = now + SKIP_SECONDS
            self._warn(account_id, exc)
            return None
        with self._lock:
            return self._record(account_id, at[-1], want, taken)

    def _from_block(self, account_id: str, now: float) -> Quota | None:
        """This process's answer without the store: a token it holds, or the refusal it gave until
        one is back (None: ask the store)."""
        block = self._blocks.get(account_id)
        if block is None:
            return None
        if block.held >= 1 and now < block.until:
            block.held -= 1
            return Quota(True, self.policy, block.remaining + block.held, _whole(block.full_at - now))
        if now < block.refused_until:
            return _refused(self.policy, block.refused_until - now)
        return None

    def _next_block(self, account_id: str, now: float) -> tuple[int, int]:
        """How many tokens to ask for and how many expired ones to give back."""
        block = self._blocks.get(account_id)
        if block is None:
            return 1, 0
        steady = block.held == 0 and now < block.until  # the last block was used up in time
        refund, block.held = block.held, 0
        return (min(self.most, block.size * 2) if steady else 1), refund

    def _record(self, account_id: str, now: float, want: int, taken: Taken) -> Quota:
        if len(self._blocks) >= MAX_TRACKED:
            self._forget(now)
        block = self._blocks.setdefault(account_id, _Block())
        if taken.count < 1:
            block.refused_until = now + taken.seconds
            return _refused(self.policy, taken.seconds)
        block.held += taken.count - 1  # the first is this request's
        block.until = now + HOLD_SECONDS
        block.size = want
        block.remaining = taken.remaining
        block.full_at = now + taken.seconds
        return Quota(True, self.policy, taken.remaining + block.held, _whole(taken.seconds))

    def _forget(self, now: float) -> None:
        for account_id in [a for a, b in self._blocks.items() if now >= b.until]:
            del self._blocks[account_id]

    def _warn(self, account_id: str, exc: Exception) -> None:
        at = time.monotonic()
        if at - self._warned_at < WARN_EVERY_SECONDS:
            return
        self._warned_at = at
        log.warning(
            "the request limit could not be counted (account %s); letting requests through: %s",
            account_id,
            exc,
            exc_info=exc,
        )


def _refused(policy: RatePolicy, seconds: float) -> Quota:
    wait = max(1, _whole(seconds))
    return Quota(False, policy, 0, wait, retry_after=wait)


def _whole(seconds: float) -> int:
    return max(0, math.ceil(seconds - _EPSILON))

"""The per-account request limit (domain/rate_limits.py) over the in-memory pacing store with a
ManualClock: a burst then recovery, accounts apart, blocks of tokens for steady traffic and one
write a request for sporadic traffic, never more admitted than the bucket allows across processes,
failing open when the store fails, off at rate 0."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from mailsage.adapters.memory_pacing import MemoryPacingStore
from mailsage.domain.clock import ManualClock
from mailsage.domain.rate_limits import (
    HOLD_SECONDS,
    KEY_PREFIX,
    SKIP_SECONDS,
    AccountRateLimiter,
    RatePolicy,
    take,
)
from mailsage.errors import ServiceUnavailable
from mailsage.ports import Change, PacingState
from mailsage.ports.pacing import T


class CountingStore(MemoryPacingStore):
    """The memory store, counting the writes a real store would be billed for."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.calls = 0

    def change_pacing(self, key: str, change: Change[T]) -> T:
        self.calls += 1

        def counted(state: PacingState | None) -> tuple[PacingState | None, T]:
            new, result = change(state)
            self.writes += new is not None
            return new, result

        return super().change_pacing(key, counted)


class FailingStore:
    def __init__(self) -> None:
        self.calls = 0

    def change_pacing(self, key: str, change: Change[Any]) -> Any:
        self.calls += 1
        raise ServiceUnavailable("the database is locked")

    def pacing_state(self, key: str) -> PacingState | None:
        raise ServiceUnavailable("the database is locked")


def limiter(
    rate: float = 20.0, burst: int = 40, store: Any = None, clock: ManualClock | None = None
) -> tuple[AccountRateLimiter, ManualClock]:
    clock = clock or ManualClock()
    return AccountRateLimiter(store or MemoryPacingStore(), RatePolicy(rate, burst), clock), clock


def test_take_refuses_past_the_burst_and_says_when_one_is_back() -> None:
    # Given an empty state and a policy of 2/s, burst 3
    policy, now = RatePolicy(2.0, 3), 100.0
    state, taken = take(None, now, policy, want=3)
    # Then three are taken at once, none left, the bucket full again in 1.5 s
    assert (taken.count, taken.remaining, taken.seconds) == (3, 0, pytest.approx(1.5))
    # When one more is asked at once / Then none, with one back in half a second
    unchanged, refused = take(state, now, policy, want=1)
    assert unchanged is None and refused.count == 0 and refused.seconds == pytest.approx(0.5)
    # When half a second passed / Then exactly one
    _, later = take(state, now + 0.5, policy, want=5)
    assert later.count == 1


def test_a_burst_is_admitted_then_refused_with_retry_after_then_recovers() -> None:
    # Given an account limited to 20/s with a burst of 40
    limits, clock = limiter(20.0, 40)
    # When it makes 40 requests at one instant / Then all are admitted, the last with nothing left
    quotas = [limits.admit("acct") for _ in range(40)]
    assert all(q is not None and q.allowed for q in quotas)
    assert quotas[-1] is not None and quotas[-1].remaining == 0
    # When it makes a 41st / Then it is refused, to retry after a whole second at least
    refused = limits.admit("acct")
    assert refused is not None and not refused.allowed
    assert refused.retry_after == 1 and refused.reset_seconds == 1 and refused.remaining == 0
    # When 1/20 s passed / Then one more is admitted, and the next refused again
    clock.advance(0.05)
    again = limits.admit("acct")
    assert again is not None and again.allowed
    after = limits.admit("acct")
    assert after is not None and not after.allowed
    # When two seconds passed / Then the whole burst is available again
    clock.advance(2.0)
    assert all(q is not None and q.allowed for q in (limits.admit("acct") for _ in range(40)))


def test_one_accounts_burst_does_not_limit_another() -> None:
    # Given one account that used up its burst
    limits, _ = limiter(1.0, 5)
    for _ in range(5):
        limits.admit("alpha")
    first_refused = limits.admit("alpha")
    assert first_refused is not None and not first_refused.allowed
    # When another account asks at the same instant / Then it has its whole burst
    others = [limits.admit("bravo") for _ in range(5)]
    assert all(q is not None and q.allowed for q in others)


def test_two_processes_share_one_bucket_and_never_admit_more_than_it_allows() -> None:
    # Given two api processes (limiters with blocks of their own) over one store, 10/s burst 10
    store, clock = CountingStore(), ManualClock()
    processes = [limiter(10.0, 10, store, clock)[0] for _ in range(2)]
    rng = random.Random(7)
    admitted: list[float] = []
    # When they serve one account far over its limit for 30 virtual seconds, in random order
    start = clock()
    for _ in range(3000):
        clock.advance(rng.uniform(0, 0.02))
        quota = rng.choice(processes).admit("acct")
        assert quota is not None
        if quota.allowed:
            admitted.append(clock() - start)
    # Then at most burst + rate*t were admitted by any time t, and about the rate overall
    for index, at in enumerate(admitted):
        assert index + 1 <= 10 + 10.0 * at + 1e-6
    assert 10 * 30 * 0.8 <= len(admitted) <= 10 + 10 * (clock() - start)


def test_steady_traffic_takes_blocks_and_sporadic_traffic_one_write_each() -> None:
    # Given an account limited to 20/s (blocks of at most 5)
    store = CountingStore()
    limits, clock = limiter(20.0, 40, store)
    # When it makes 100 requests at 10/s / Then all are admitted with far fewer writes than requests
    for _ in range(100):
        quota = limits.admit("steady")
        assert quota is not None and quota.allowed
        clock.advance(0.1)
    assert store.writes <= 40
    # When another makes 10 requests 3 s apart / Then each is one write
    before = store.writes
    for _ in range(10):
        clock.advance(3.0)
        assert limits.admit("sporadic") is not None
    assert store.writes - before == 10


def test_requests_past_the_limit_are_refused_without_asking_the_store() -> None:
    # Given an account that used up its burst of 2 at 1/s
    store = CountingStore()
    limits, clock = limiter(1.0, 2, store)
    limits.admit("acct")
    limits.admit("acct")
    first = limits.admit("acct")
    assert first is not None and not first.allowed and first.retry_after == 1
    calls = store.calls
    # When it keeps asking before a token is due back / Then each is refused without a store call
    clock.advance(0.6)
    refused = [limits.admit("acct") for _ in range(50)]
    assert all(q is not None and not q.allowed and q.retry_after == 1 for q in refused)
    assert store.calls == calls
    # When the token is due / Then the store is asked again and it is admitted
    clock.advance(0.4)
    again = limits.admit("acct")
    assert again is not None and again.allowed and store.calls == calls + 1


def test_tokens_held_unused_are_given_back_on_the_next_write() -> None:
    # Given a process that took a block for a steady account, then the traffic stopped
    store = MemoryPacingStore()
    limits, clock = limiter(20.0, 40, store)
    for _ in range(8):
        limits.admit("acct")
        clock.advance(0.01)
    held = sum(b.held for b in limits._blocks.values())
    assert held > 0
    tat_before = store.pacing_state(KEY_PREFIX + "acct")
    assert tat_before is not None
    # When it asks again after its block expired
    clock.advance(HOLD_SECONDS)
    limits.admit("acct")
    # Then the shared clock moved by one request minus what it gave back
    tat_after = store.pacing_state(KEY_PREFIX + "acct")
    assert tat_after is not None
    expected = max(tat_before["tat"] - held / 20.0, clock()) + 1 / 20.0
    assert tat_after["tat"] == pytest.approx(expected)


def test_a_failing_store_lets_requests_through_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    # Given a limiter whose store fails (throttled, unavailable, locked)
    store = FailingStore()
    limits, clock = limiter(1.0, 1, store)
    # When requests come, far over the limit
    with caplog.at_level(logging.WARNING, logger="mailsage.domain.rate_limits"):
        quotas = [limits.admit("acct") for _ in range(5)]
    # Then none is counted (every one goes through), the failure is logged once, and the store
    # was asked once: the others did not wait for it
    assert quotas == [None] * 5
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "letting requests through" in warnings[0].getMessage()
    assert store.calls == 1
    # When the pause is over / Then the store is asked again
    clock.advance(SKIP_SECONDS)
    assert limits.admit("acct") is None and store.calls == 2


def test_a_store_that_recovers_counts_again() -> None:
    # Given a store that failed once, then works
    store = MemoryPacingStore()
    failing = FailingStore()
    limits, clock = limiter(1.0, 1, failing)
    assert limits.admit("acct") is None
    limits.store = store
    # When the pause after the failure is over / Then requests are counted, and refused over the limit
    clock.advance(SKIP_SECONDS)
    first, second = limits.admit("acct"), limits.admit("acct")
    assert first is not None and first.allowed
    assert second is not None and not second.allowed


def test_rate_zero_is_off() -> None:
    # Given a limit of 0 requests a second / Then nothing is counted and nothing stored
    store = CountingStore()
    limits, _ = limiter(0.0, 40, store)
    assert [limits.admit("acct") for _ in range(100)] == [None] * 100
    assert store.writes == 0


def test_the_policy_window_is_the_time_to_fill_the_bucket() -> None:
    assert RatePolicy(20.0, 40).window == 2
    assert RatePolicy(0.5, 3).window == 6
    assert RatePolicy(100.0, 1).window == 1


class BusyStore(MemoryPacingStore):
    """The memory store, where a write may wait for the lock while another process writes first."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self.clock = clock
        self.meanwhile: list[Any] = []  # what other processes do while the next write waits

    def change_pacing(self, key: str, change: Change[T]) -> T:
        waiting, self.meanwhile = self.meanwhile, []
        for other in waiting:
            self.clock.advance(1.5)  # the lock is held that long
            other()
        return super().change_pacing(key, change)


def test_a_write_that_waited_for_the_store_compares_the_bucket_with_the_time_of_the_write() -> None:
    """Process A asks for one token; while its write waits 1.5 s for the lock, process B writes.
    Compared with A's time from before the wait, B's write makes the bucket look emptied: A would
    be refused far under its limit (2 requests in 1.5 s at 100/s)."""
    clock = ManualClock(1_000_000.0)
    store = BusyStore(clock)
    policy = RatePolicy(rate=100.0, burst=100)
    a = AccountRateLimiter(store, policy, clock)
    b = AccountRateLimiter(store, policy, clock)
    store.meanwhile.append(lambda: b.admit("acct"))
    quota = a.admit("acct")
    assert quota is not None and quota.allowed, quota

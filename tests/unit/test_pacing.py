"""The pacer (domain/pacing.py) over the in-memory store with a ManualClock: the provider's rate is
never exceeded, a lone campaign uses all of it, transactional mail jumps the campaign, accounts
share a lane, a parked provider is probed once, throttles push grants back, connection slots."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pytest

from mailsage.adapters.memory_pacing import MemoryPacingStore
from mailsage.domain.clock import ManualClock
from mailsage.domain.models import Content, Job, JobKind, JobState
from mailsage.domain.pacing import (
    BURST_SECONDS,
    CONNECTION_LEASE_SECONDS,
    IDLE_SECONDS,
    PROBE_SECONDS,
    THROTTLE_PENALTY_SECONDS,
    Grant,
    Lane,
    Pacer,
    Parked,
    RouteLimit,
    Wait,
    lane_of,
)

ROUTE = "ses"
HORIZON = 2.0
TICK = 0.05  # how often the simulated senders ask
PRECISION = 1e-3  # messages: times are epoch floats, good to about a microsecond


def make_pacer(rate: float | None, max_connections: int | None = None) -> tuple[Pacer, ManualClock]:
    clock = ManualClock()
    limit = RouteLimit(rate=rate, max_connections=max_connections)
    return Pacer(MemoryPacingStore(), lambda route: limit if route == ROUTE else None, clock, HORIZON), clock


def burst(rate: float) -> float:
    return max(1.0, rate * BURST_SECONDS)


@dataclass(frozen=True)
class Taken:
    start: float
    count: int
    account: str
    lane: Lane


@dataclass(frozen=True)
class Sender:
    """A sender of one account in one lane that asks every tick while `active(t)` (t: seconds
    since the simulation began), for `want(rng)` messages, until it gets a Wait."""

    account: str
    lane: Lane = Lane.BULK
    active: Callable[[float], bool] = lambda t: True
    want: Callable[[random.Random], int] = lambda rng: 1_000_000


def simulate(pacer: Pacer, clock: ManualClock, senders: Iterable[Sender], seconds: float) -> list[Taken]:
    """Every grant the senders got in `seconds` of simulated time (senders shuffled each tick)."""
    rng = random.Random(7)
    senders = list(senders)
    t0, taken = clock(), []
    while clock() < t0 + seconds:
        rng.shuffle(senders)
        for sender in senders:
            if not sender.active(clock() - t0):
                continue
            while isinstance(
                got := pacer.reserve(ROUTE, sender.lane, sender.account, sender.want(rng)), Grant
            ):
                assert got.start >= clock()
                taken.append(Taken(got.start - t0, got.count, sender.account, sender.lane))
        clock.advance(TICK)
    return taken


def worst_excess(taken: list[Taken], rate: float) -> float:
    """The most that any window [a, b] of grant starts holds beyond rate * (b - a)."""
    ordered = sorted(taken, key=lambda t: t.start)
    counts = list(itertools.accumulate((t.count for t in ordered), initial=0))
    return max(
        counts[j + 1] - counts[i] - rate * (ordered[j].start - ordered[i].start)
        for i in range(len(ordered))
        for j in range(i, len(ordered))
    )


def rate_of(taken: list[Taken], begin: float, end: float, account: str | None = None) -> float:
    sent = sum(t.count for t in taken if begin <= t.start < end and account in (None, t.account))
    return sent / (end - begin)


@pytest.mark.parametrize("rate", [1.0, 14.0, 200.0])
def test_grants_never_exceed_the_rate_over_any_window(rate: float) -> None:
    # Given several accounts' bulk senders asking for varied amounts, coming and going
    pacer, clock = make_pacer(rate)
    senders = [
        Sender("acc_a", want=lambda rng: rng.randint(1, 120)),
        Sender("acc_a", want=lambda rng: rng.randint(1, 3)),
        Sender("acc_b", active=lambda t: 3 < t < 12, want=lambda rng: rng.randint(1, 60)),
        Sender("acc_c", active=lambda t: int(t) % 4 == 0),
    ]
    # When they run for 20 s
    taken = simulate(pacer, clock, senders, 20.0)
    # Then no window of grant starts holds more than rate * its length + one burst
    assert sum(t.count for t in taken) > rate * 10
    assert worst_excess(taken, rate) <= burst(rate) + PRECISION


@pytest.mark.parametrize("rate", [14.0, 200.0])
def test_the_transactional_lane_adds_at_most_the_horizon_to_the_rate(rate: float) -> None:
    # Given a campaign, and transactional sends arriving in bursts while it drains
    pacer, clock = make_pacer(rate)
    senders = [
        Sender("acc_a"),
        Sender("acc_b", want=lambda rng: rng.randint(1, 40)),
        Sender("acc_t", Lane.TRANSACTIONAL, active=lambda t: 4 < t < 5 or 9 < t < 9.5, want=lambda rng: 1),
        Sender("acc_u", Lane.TRANSACTIONAL, active=lambda t: t > 13, want=lambda rng: rng.randint(1, 5)),
    ]
    # When they run
    taken = simulate(pacer, clock, senders, 20.0)
    # Then transactional grants jumped the campaign by at most what it held reserved (the
    # horizon), and over the whole run every lane together kept to the rate
    assert any(t.lane is Lane.TRANSACTIONAL for t in taken)
    assert worst_excess(taken, rate) <= burst(rate) + rate * HORIZON + PRECISION
    assert rate_of(taken, 0.0, 20.0) <= rate + (burst(rate) + rate * HORIZON) / 20.0


@pytest.mark.parametrize("rate", [14.0, 200.0])
def test_a_lone_campaign_uses_the_whole_rate(rate: float) -> None:
    # Given one account's bulk senders with unlimited demand
    pacer, clock = make_pacer(rate)
    # When they run for a minute
    taken = simulate(pacer, clock, [Sender("acc_a"), Sender("acc_a")], 60.0)
    # Then the grants starting in that minute use at least 99% of the rate, and never more
    assert 0.99 * rate <= rate_of(taken, 0.0, 60.0) <= rate + burst(rate) / 60.0


def test_a_grant_beyond_the_horizon_is_a_wait_for_exactly_that_long() -> None:
    # Given a campaign that reserved everything up to the horizon
    pacer, clock = make_pacer(14.0)
    while isinstance(got := pacer.reserve(ROUTE, Lane.BULK, "acc_a", 100), Grant):
        pass
    # Then the first sender sent away is told to come back when its grant would start
    assert isinstance(got, Wait)
    assert got.seconds > HORIZON
    # and the next slot is within the horizon exactly when the wait is down to the horizon
    clock.advance(got.seconds - HORIZON - 0.01)
    assert isinstance(pacer.reserve(ROUTE, Lane.BULK, "acc_a", 100), Wait)
    clock.advance(0.02)
    assert isinstance(pacer.reserve(ROUTE, Lane.BULK, "acc_a", 100), Grant)


def test_bulk_senders_sent_away_come_back_one_after_another() -> None:
    # Given a campaign that reserved everything up to the horizon
    pacer, _ = make_pacer(14.0)
    while isinstance(first := pacer.reserve(ROUTE, Lane.BULK, "acc_a", 100), Grant):
        pass
    # When two more of its senders are sent away
    second = pacer.reserve(ROUTE, Lane.BULK, "acc_a", 100)
    third = pacer.reserve(ROUTE, Lane.BULK, "acc_a", 100)
    # Then each comes back a turn later (its 100 messages at the account's rate), not all together
    assert isinstance(first, Wait) and isinstance(second, Wait) and isinstance(third, Wait)
    assert second.seconds == pytest.approx(first.seconds + 100 / 14.0)
    assert third.seconds == pytest.approx(second.seconds + 100 / 14.0)


@pytest.mark.parametrize("rate", [1.0, 14.0, 200.0])
def test_a_transactional_send_is_not_behind_a_campaign(rate: float) -> None:
    # Given a campaign that holds every bulk grant up to the horizon
    pacer, clock = make_pacer(rate)
    while isinstance(pacer.reserve(ROUTE, Lane.BULK, "acc_a", 1_000), Grant):
        pass
    # When a single send asks for its slot
    got = pacer.reserve(ROUTE, Lane.TRANSACTIONAL, "acc_b", 1)
    # Then it gets one within a burst of the rate, not after the campaign's grants
    assert isinstance(got, Grant)
    assert got.count == 1
    assert got.start - clock() <= burst(rate) / rate
    # and the campaign gives that slot back: the shared clock is one slot later than without it
    campaign_only, _ = make_pacer(rate)
    while isinstance(campaign_only.reserve(ROUTE, Lane.BULK, "acc_a", 1_000), Grant):
        pass
    shared = pacer.store.pacing_state(f"rate:{ROUTE}") or {}
    alone = campaign_only.store.pacing_state(f"rate:{ROUTE}") or {}
    assert shared["tat"] == pytest.approx(alone["tat"] + 1 / rate, abs=1e-6)


@pytest.mark.parametrize("rate", [14.0, 200.0])
def test_two_accounts_in_one_lane_each_get_about_half(rate: float) -> None:
    # Given one account's campaign that has the lane to itself, then a second account's campaign
    # that starts while the first holds every slot up to the horizon
    pacer, clock = make_pacer(rate)
    senders = [Sender("acc_a"), Sender("acc_a"), Sender("acc_b", active=lambda t: t > 5)]
    # When both run
    taken = simulate(pacer, clock, senders, 45.0)
    # Then, once the second has started, each gets about half of the rate, and together all of it
    assert rate_of(taken, 0.0, 5.0, "acc_a") >= 0.99 * rate
    for account in ("acc_a", "acc_b"):
        assert 0.45 * rate <= rate_of(taken, 15.0, 45.0, account) <= 0.55 * rate
    assert rate_of(taken, 15.0, 45.0) >= 0.98 * rate


def test_a_late_account_is_not_starved_by_a_campaign_that_always_asks_first() -> None:
    # Given a campaign whose senders take every slot as soon as it comes within the horizon, and a
    # second account that only ever asks after them
    rate = 14.0
    pacer, clock = make_pacer(rate)
    late = 0
    for _ in range(int(20 / TICK)):
        while isinstance(pacer.reserve(ROUTE, Lane.BULK, "acc_a", 1_000), Grant):
            pass
        got = pacer.reserve(ROUTE, Lane.BULK, "acc_b", 1_000)
        late += got.count if isinstance(got, Grant) else 0
        clock.advance(TICK)
    # Then its waiting counted: the campaign's share shrank and the late account got about half
    assert late >= 0.4 * rate * 20


def test_an_idle_accounts_share_returns_to_the_other() -> None:
    # Given two accounts sharing the bulk lane, the second of which stops asking at t=10
    rate = 14.0
    pacer, clock = make_pacer(rate)
    senders = [Sender("acc_a"), Sender("acc_b", active=lambda t: t < 10)]
    # When they run on
    taken = simulate(pacer, clock, senders, 40.0)
    # Then the first has half the rate while the second still counts, and the whole of it once the
    # second has reserved nothing for IDLE_SECONDS (its last grants ran to the horizon) and the
    # first's grants at half the rate, reserved up to the horizon, have passed
    assert rate_of(taken, 2.0, 10.0, "acc_a") <= 0.6 * rate
    settled = 10.0 + HORIZON + IDLE_SECONDS + HORIZON + 1.0
    assert rate_of(taken, settled, 40.0, "acc_a") >= 0.99 * rate


@pytest.mark.parametrize("reason", ["daily_quota", "sending_paused"])
def test_a_parked_provider_is_probed_once_then_unparked(reason: str) -> None:
    # Given a provider parked for a reason
    pacer, clock = make_pacer(14.0)
    until = pacer.park(ROUTE, reason)
    assert until == clock() + PROBE_SECONDS[reason]
    # Then every sender is parked until then, in both lanes
    clock.advance(PROBE_SECONDS[reason] - 1)
    for lane in Lane:
        assert pacer.reserve(ROUTE, lane, "acc_a", 10) == Parked(reason, until)
    assert pacer.parked(ROUTE) == Parked(reason, until)
    # When the time comes, exactly one sender gets a one-message probe; the others stay parked
    clock.advance(1)
    probe = pacer.reserve(ROUTE, Lane.BULK, "acc_a", 10)
    assert probe == Grant(clock(), 1, 14.0, probe=True)
    again = pacer.reserve(ROUTE, Lane.BULK, "acc_b", 10)
    assert isinstance(again, Parked)
    assert again.until == clock() + PROBE_SECONDS[reason]
    # When the probe got through, the provider is unparked and grants are ordinary again
    pacer.unpark(ROUTE)
    assert pacer.parked(ROUTE) is None
    got = pacer.reserve(ROUTE, Lane.BULK, "acc_a", 10)
    assert isinstance(got, Grant)
    assert (got.probe, got.count) == (False, 7)


def test_a_failed_probe_parks_again_until_the_next_probe() -> None:
    # Given a parked provider whose probe time came
    pacer, clock = make_pacer(14.0)
    pacer.park(ROUTE, "daily_quota")
    clock.advance(PROBE_SECONDS["daily_quota"])
    assert isinstance(pacer.reserve(ROUTE, Lane.BULK, "acc_a", 10), Grant)
    # When the probe is refused and the provider parked again
    until = pacer.park(ROUTE, "daily_quota")
    # Then nothing is granted until the next probe
    clock.advance(PROBE_SECONDS["daily_quota"] - 1)
    assert pacer.reserve(ROUTE, Lane.TRANSACTIONAL, "acc_a", 1) == Parked("daily_quota", until)


@pytest.mark.parametrize("lane", list(Lane))
def test_a_throttle_pushes_the_next_grant_back(lane: Lane) -> None:
    # Given two identical pacers whose campaigns reserved the same grants
    rate = 14.0
    throttled, clock = make_pacer(rate)
    calm, calm_clock = make_pacer(rate)
    for pacer in (throttled, calm):
        for _ in range(2):
            assert isinstance(pacer.reserve(ROUTE, Lane.BULK, "acc_a", 7), Grant)
    # When one provider throttles a send
    throttled.throttled(ROUTE)
    # Then its next full grant, in either lane, starts THROTTLE_PENALTY_SECONDS later
    pushed, unpushed = throttled.reserve(ROUTE, lane, "acc_a", 7), calm.reserve(ROUTE, lane, "acc_a", 7)
    assert isinstance(pushed, Grant) and isinstance(unpushed, Grant)
    assert pushed.start == pytest.approx(unpushed.start + THROTTLE_PENALTY_SECONDS, abs=1e-6)


def test_a_throttle_delays_an_idle_provider_from_now() -> None:
    # Given a provider nobody has sent through for a while
    pacer, clock = make_pacer(14.0)
    pacer.reserve(ROUTE, Lane.BULK, "acc_a", 7)
    clock.advance(60)
    # When it throttles
    pacer.throttled(ROUTE)
    # Then the next full grant starts the penalty from now, not from its old schedule
    got = pacer.reserve(ROUTE, Lane.BULK, "acc_a", 7)
    assert isinstance(got, Grant)
    assert got.start == pytest.approx(clock() + THROTTLE_PENALTY_SECONDS, abs=1e-6)


def test_connection_slots_are_limited_and_released() -> None:
    # Given a relay that allows two connections
    pacer, clock = make_pacer(None, max_connections=2)
    # When three senders connect
    assert pacer.connect(ROUTE, "worker-1")
    assert pacer.connect(ROUTE, "worker-2")
    # Then the third waits, while a holder may renew its own slot
    assert not pacer.connect(ROUTE, "worker-3")
    assert pacer.connect(ROUTE, "worker-1")
    # When one disconnects, the third gets its slot
    pacer.disconnect(ROUTE, "worker-1")
    assert pacer.connect(ROUTE, "worker-3")
    assert not pacer.connect(ROUTE, "worker-1")


def test_a_dead_holders_slot_expires() -> None:
    # Given two slots taken, one of which is renewed later by its live holder
    pacer, clock = make_pacer(None, max_connections=2)
    assert pacer.connect(ROUTE, "dies")
    assert pacer.connect(ROUTE, "lives")
    clock.advance(CONNECTION_LEASE_SECONDS / 2)
    assert pacer.connect(ROUTE, "lives")
    # When the dead holder's lease runs out
    clock.advance(CONNECTION_LEASE_SECONDS / 2 - 1)
    assert not pacer.connect(ROUTE, "new")
    clock.advance(2)
    # Then its slot is free again, and only its slot
    assert pacer.connect(ROUTE, "new")
    assert not pacer.connect(ROUTE, "another")


def test_a_route_without_limits_is_not_paced() -> None:
    # Given a route with no limit and one with only a connection limit
    pacer, clock = make_pacer(None, max_connections=1)
    # Then neither reserves slots, and the unlimited one never refuses a connection
    assert pacer.reserve("relay", Lane.BULK, "acc_a", 10) is None
    assert pacer.reserve(ROUTE, Lane.BULK, "acc_a", 10) is None
    assert all(pacer.connect("relay", f"worker-{n}") for n in range(5))


def _job(kind: JobKind, total: int, campaign_id: str | None = None) -> Job:
    return Job(
        id="job_1",
        account_id="acc_a",
        kind=kind,
        state=JobState.QUEUED,
        content=Content(subject="s", text="t", from_addr="a@acme.test"),
        total=total,
        created_at=0.0,
        updated_at=0.0,
        chunks=1,
        campaign_id=campaign_id,
    )


def test_single_sends_are_transactional_and_batches_bulk() -> None:
    assert lane_of(_job(JobKind.SEND, 1)) is Lane.TRANSACTIONAL
    assert lane_of(_job(JobKind.BATCH, 1)) is Lane.TRANSACTIONAL
    assert lane_of(_job(JobKind.BATCH, 2)) is Lane.BULK
    assert lane_of(_job(JobKind.BATCH, 1, campaign_id="spring")) is Lane.BULK


class BusyStore(MemoryPacingStore):
    """The memory store, where the next write first waits `lock_seconds` for another process's lock."""

    def __init__(self, clock: ManualClock, lock_seconds: float) -> None:
        super().__init__()
        self.clock, self.lock_seconds = clock, lock_seconds

    def change_pacing(self, key, change):  # type: ignore[no-untyped-def]
        self.clock.advance(self.lock_seconds)
        self.lock_seconds = 0.0
        return super().change_pacing(key, change)


def test_a_grant_that_waited_for_the_store_starts_when_it_was_written() -> None:
    """A reservation whose write waited 1.5 s for the lock is granted from the time of the write.
    Granted from the time it asked, it would start in the past: its messages leave when the sender
    gets it, 1.5 s later than booked, together with the next grant's: more than the burst at once."""
    clock, rate = ManualClock(), 10.0
    limit = RouteLimit(rate=rate)
    pacer = Pacer(BusyStore(clock, 1.5), lambda route: limit, clock, HORIZON)
    clock.advance(IDLE_SECONDS * 2)  # an idle provider: the bucket is far behind the clock
    first = pacer.reserve(ROUTE, Lane.BULK, "a", 1_000)
    written = clock()
    second = pacer.reserve(ROUTE, Lane.BULK, "a", 1_000)
    assert isinstance(first, Grant) and isinstance(second, Grant)
    assert first.start >= written, (first, written)
    sent_at = [(max(g.start, written), g.count) for g in (first, second)]
    assert sent_at[1][0] - sent_at[0][0] >= first.count / rate - PRECISION, sent_at

"""Pacing: every sender together stays within a provider's sending rate, transactional mail first,
and the accounts sending in a lane share its rate.

The state per provider is a generic cell rate algorithm (GCRA, the token bucket written as times):
`tat` is when the bucket would be full again. A sender reserves up to a burst of sending slots at
once (one shared write per grant, not per message), sleeps until the grant's start and sends them.
Grants are kept to half a second of the rate so that a sender slower than its grant stays within the
provider's own burst allowance. A grant further away than `horizon` is not taken: the chunk goes
back to the queue for that long instead of holding a worker (and paying for a Lambda that sleeps).

- Lanes: the bulk lane reserves after everything; the transactional lane may start up to `horizon`
  ahead of the shared clock (what bulk can hold reserved) and pushes it, so a single send never
  waits behind a campaign's grants. Bulk grants alone stay within rate*T + burst in any window of T
  seconds; transactional ones may add up to rate*horizon to that, which the bulk lane then gives back.
- Accounts: each account sending (or waiting to) in a lane recently has its own clock at rate/n
  (n such accounts), so one account's campaign cannot take the whole rate from the others.
- Parked: a provider that stopped sending (daily quota used up, sending paused) parks every sender
  until `until`; the first reservation after that is a one-message probe.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mailsage.domain.clock import Clock, system_clock
from mailsage.domain.models import Job, JobKind
from mailsage.ports import PacingState, PacingStore

BURST_SECONDS = 0.5  # a grant is at most this much of the rate
IDLE_SECONDS = 5.0  # an account that reserved nothing for this long no longer takes a share
THROTTLE_PENALTY_SECONDS = 0.5  # a throttle pushes every sender's next grant back this much
# When a parked provider is probed again: a daily quota frees up over its rolling 24 hours; a paused
# account waits for a person.
PROBE_SECONDS = {"daily_quota": 900.0, "sending_paused": 300.0}
DEFAULT_PROBE_SECONDS = 300.0
LONGEST_WAIT_SECONDS = 900.0  # SQS's longest delay
CONNECTION_LEASE_SECONDS = 330.0  # a sender that died holding a connection slot frees it after this


class Lane(StrEnum):
    TRANSACTIONAL = "transactional"  # single sends: drained first, never behind a campaign
    BULK = "bulk"  # batches and campaigns


def lane_of(job: Job) -> Lane:
    """A send (v1 /send) or a lone message outside a campaign is transactional; the rest is bulk."""
    if job.campaign_id is None and (job.kind is JobKind.SEND or job.total == 1):
        return Lane.TRANSACTIONAL
    return Lane.BULK


@dataclass(frozen=True, slots=True)
class RouteLimit:
    """What a provider allows: messages per second (None: unpaced) and concurrent connections."""

    rate: float | None = None
    max_connections: int | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    start: float  # epoch seconds: send none of them before
    count: int
    rate: float  # the rate this account is paced at in its lane now
    probe: bool = False  # the one message that finds out whether a parked provider sends again


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float  # no slot within the horizon: come back after this


@dataclass(frozen=True, slots=True)
class Parked:
    reason: str
    until: float


Reservation = Grant | Wait | Parked
Limits = Callable[[str], RouteLimit | None]  # a provider's limits by route name; None: unpaced


def reserve(
    state: PacingState | None,
    now: float,
    rate: float,
    lane: Lane,
    account: str,
    want: int,
    horizon: float,
) -> tuple[PacingState | None, Reservation]:
    """The pure step: the new state (None: unchanged) and what the sender got."""
    s: dict[str, Any] = dict(state or {})
    paused = s.get("paused")
    if paused:
        if now < paused["until"]:
            return None, Parked(paused["reason"], paused["until"])
        # Probe: one message; the others stay parked until it tells (or the next probe time).
        s["paused"] = {**paused, "until": now + paused.get("every", DEFAULT_PROBE_SECONDS)}
        return s, Grant(now, 1, rate, probe=True)
    burst = max(1.0, rate * BURST_SECONDS)
    count = max(1, min(want, math.floor(burst)))
    lanes = {k: dict(v) for k, v in s.get("lanes", {}).items()}
    own = lanes.setdefault(lane.value, {})
    accounts = {a: t for a, t in own.get("accounts", {}).items() if t > now - IDLE_SECONDS}
    share = rate / len(accounts.keys() | {account})
    account_tat = accounts.get(account, 0.0)
    slack = (burst - count) / rate
    # The bulk lane holds at most `horizon` reserved, so a transactional grant may start that much
    # ahead of the shared clock and never waits behind a campaign; its own lane's clock keeps it to
    # the rate, and every grant pushes the shared clock, so the campaign makes up for it after.
    ahead = horizon if lane is Lane.TRANSACTIONAL else 0.0
    start = max(
        now,
        s.get("tat", 0.0) - slack - ahead,
        own.get("tat", 0.0) - slack if lane is Lane.TRANSACTIONAL else now,
        account_tat - (burst - count) / share,
    )
    own["accounts"], s["lanes"] = accounts, lanes
    if start - now > horizon:
        registered = account_tat < now
        if registered:
            # Waiting counts as sending in the lane: the accounts holding its slots get a smaller
            # share from now on, or an account that came late would wait behind them for ever.
            accounts[account] = now
        changed, wait = _waiting_line(s, start, now, share, lane, account, want)
        return changed if changed is not None else (s if registered else None), wait
    s["tat"] = max(s.get("tat", 0.0), start) + count / rate
    if lane is Lane.TRANSACTIONAL:
        own["tat"] = max(own.get("tat", 0.0), start) + count / rate
    accounts[account] = max(account_tat, start) + count / share
    return s, Grant(start, count, share)


def _waiting_line(
    s: dict[str, Any], start: float, now: float, share: float, lane: Lane, account: str, want: int
) -> tuple[PacingState | None, Wait]:
    """A bulk sender sent away takes a place in its account's waiting line, as long as its messages
    take at the account's share, and comes back at its turn: with a backlog far longer than the
    horizon, senders come back one after another instead of all together every few seconds (each
    return costs a delivery). A place further than a queue can delay is not taken: that sender
    comes back then and asks again."""
    if lane is Lane.TRANSACTIONAL:
        return None, Wait(start - now)
    lines = {a: t for a, t in s.get("lines", {}).items() if t > now}
    turn = max(lines.get(account, 0.0), start)
    if turn - now > LONGEST_WAIT_SECONDS:
        return None, Wait(LONGEST_WAIT_SECONDS)
    lines[account] = turn + want / share
    s["lines"] = lines
    return s, Wait(turn - now)


def penalize(state: PacingState | None, now: float, seconds: float) -> PacingState:
    """The provider throttled a send: every lane's next grant moves back `seconds`."""
    s = dict(state or {})
    s["tat"] = max(s.get("tat", 0.0), now) + seconds
    lanes = {k: dict(v) for k, v in s.get("lanes", {}).items()}
    # Every lane, also one that has not sent yet: the transactional lane runs ahead of the shared
    # clock, so only its own clock holds it back.
    for lane in Lane:
        own = lanes.setdefault(lane.value, {})
        own["tat"] = max(own.get("tat", 0.0), now) + seconds
    s["lanes"] = lanes
    return s


def park(state: PacingState | None, now: float, reason: str) -> tuple[PacingState, float]:
    """The provider stopped sending: park every sender until the next probe. Returns that time."""
    s = dict(state or {})
    every = PROBE_SECONDS.get(reason, DEFAULT_PROBE_SECONDS)
    s["paused"] = {"reason": reason, "until": now + every, "every": every}
    return s, now + every


def unpark(state: PacingState | None) -> PacingState | None:
    """A probe got through: the provider sends again (None: it was not parked)."""
    if not state or not state.get("paused"):
        return None
    s = dict(state)
    s.pop("paused")
    return s


def take_connection(
    state: PacingState | None, now: float, holder: str, limit: int
) -> tuple[PacingState | None, bool]:
    """A connection slot for `holder` unless `limit` are held (a slot whose holder died expires)."""
    held = {h: t for h, t in (state or {}).get("held", {}).items() if t > now}
    if holder not in held and len(held) >= limit:
        return None, False
    held[holder] = now + CONNECTION_LEASE_SECONDS
    return {"held": held}, True


def give_connection(state: PacingState | None, holder: str) -> tuple[PacingState | None, None]:
    held = dict((state or {}).get("held", {}))
    if held.pop(holder, None) is None:
        return None, None
    return {"held": held}, None


class Pacer:
    """The pacing of every provider with a limit, over the shared state in `store`."""

    def __init__(
        self,
        store: PacingStore,
        limits: Limits,
        clock: Clock = system_clock,
        horizon: float = 2.0,
    ) -> None:
        self.store = store
        self.limits = limits
        self.clock = clock
        self.horizon = horizon  # the longest a sender sleeps for a grant

    def limit(self, route: str) -> RouteLimit | None:
        return self.limits(route)

    def reserve(self, route: str, lane: Lane, account: str, want: int) -> Reservation | None:
        """Sending slots for up to `want` messages through `route`; None if it is not paced."""
        limit = self.limits(route)
        if limit is None or not limit.rate:
            return None
        # Every change reads the clock inside the compare-and-set, not before it: a write that waited
        # for the store's lock would otherwise grant slots from a time already past, and the grant
        # after it would start at the same instant: twice the rate for a moment.
        rate = limit.rate
        return self.store.change_pacing(
            _rate_key(route), lambda s: reserve(s, self.clock(), rate, lane, account, want, self.horizon)
        )

    def throttled(self, route: str) -> None:
        self.store.change_pacing(
            _rate_key(route), lambda s: (penalize(s, self.clock(), THROTTLE_PENALTY_SECONDS), None)
        )

    def park(self, route: str, reason: str) -> float:
        """Park every sender of `route`; returns when it is probed again."""
        return self.store.change_pacing(_rate_key(route), lambda s: park(s, self.clock(), reason))

    def unpark(self, route: str) -> None:
        self.store.change_pacing(_rate_key(route), lambda s: (unpark(s), None))

    def parked(self, route: str) -> Parked | None:
        paused = (self.store.pacing_state(_rate_key(route)) or {}).get("paused")
        if paused and self.clock() < paused["until"]:
            return Parked(paused["reason"], paused["until"])
        return None

    def connect(self, route: str, holder: str) -> bool:
        """A connection slot of `route` for `holder` (True when the route has no limit)."""
        limit = self.limits(route)
        if limit is None or not limit.max_connections:
            return True
        most = limit.max_connections
        return self.store.change_pacing(
            _connections_key(route), lambda s: take_connection(s, self.clock(), holder, most)
        )

    def disconnect(self, route: str, holder: str) -> None:
        limit = self.limits(route)
        if limit is not None and limit.max_connections:
            self.store.change_pacing(_connections_key(route), lambda s: give_connection(s, holder))


def jittered(seconds: float) -> float:
    """A delay spread over +0-50%, at most a second, so that senders sent away together come back
    apart (a turn in the waiting line stays near its time)."""
    return seconds + random.random() * min(seconds / 2, 1.0)


def _rate_key(route: str) -> str:
    return f"rate:{route}"


def _connections_key(route: str) -> str:
    return f"connections:{route}"

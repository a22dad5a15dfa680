"""The PacingStore contract, run against every adapter: SQLite (a real file), DynamoDB (moto) and
the in-memory store. A change is a compare-and-set: applied whole or not at all, never lost to a
concurrent writer, and re-run on the winner's state when an optimistic store lost a race."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from mailsage.adapters.memory_pacing import MemoryPacingStore
from mailsage.adapters.sqlite.db import Database
from mailsage.adapters.sqlite.store import SqliteStore
from mailsage.domain.clock import ManualClock
from mailsage.domain.pacing import BURST_SECONDS, Grant, Lane, Pacer, RouteLimit
from mailsage.ports import PacingState, PacingStore
from tests.contract.conftest import STORES


@contextmanager
def _memory(tmp_path: Path) -> Iterator[PacingStore]:
    yield MemoryPacingStore()


PACING_STORES: dict[str, Callable[[Path], AbstractContextManager[Any]]] = {**STORES, "memory": _memory}
# Stores that hold a lock across a change: a writer that comes in between waits for it instead of
# winning, so the change runs once. The others re-run it on the winner's state.
LOCKING = {"sqlite", "memory"}


@pytest.fixture(params=sorted(PACING_STORES))
def pacing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PacingStore]:
    with PACING_STORES[request.param](tmp_path) as adapter:
        yield adapter


def increment(state: PacingState | None) -> tuple[PacingState, int]:
    n = (state or {}).get("n", 0) + 1
    return {"n": n}, n


def test_a_change_is_applied_and_its_result_returned(pacing: PacingStore) -> None:
    # Given no state under a key
    assert pacing.pacing_state("rate:ses") is None
    # When a change writes one
    result = pacing.change_pacing("rate:ses", lambda s: ({"tat": 12.5, "lanes": {"bulk": {}}}, "done"))
    # Then its result comes back and the state reads back exactly, nested values included
    assert result == "done"
    assert pacing.pacing_state("rate:ses") == {"tat": 12.5, "lanes": {"bulk": {}}}


def test_a_change_sees_the_state_written_before(pacing: PacingStore) -> None:
    # Given a state
    pacing.change_pacing("rate:ses", lambda s: ({"tat": 1.0, "held": {"a": 2}}, None))
    seen: list[PacingState | None] = []

    def change(state: PacingState | None) -> tuple[PacingState, None]:
        seen.append(state)
        return {"tat": 3.0}, None

    # When it is changed
    pacing.change_pacing("rate:ses", change)
    # Then the change got the state as written, and its own replaces it whole
    assert seen == [{"tat": 1.0, "held": {"a": 2}}]
    assert pacing.pacing_state("rate:ses") == {"tat": 3.0}


def test_returning_none_writes_nothing(pacing: PacingStore) -> None:
    # Given a state under one key and none under another
    pacing.change_pacing("rate:ses", lambda s: ({"tat": 1.0}, None))
    # When changes decline to write
    assert pacing.change_pacing("rate:ses", lambda s: (None, "kept")) == "kept"
    assert pacing.change_pacing("connections:relay", lambda s: (None, 7)) == 7
    # Then nothing was written
    assert pacing.pacing_state("rate:ses") == {"tat": 1.0}
    assert pacing.pacing_state("connections:relay") is None


def test_keys_are_independent(pacing: PacingStore) -> None:
    # Given two keys changed separately
    pacing.change_pacing("rate:ses", increment)
    pacing.change_pacing("rate:ses", increment)
    pacing.change_pacing("rate:relay#1", increment)
    # Then each holds its own state
    assert pacing.pacing_state("rate:ses") == {"n": 2}
    assert pacing.pacing_state("rate:relay#1") == {"n": 1}


def test_a_change_that_raises_writes_nothing(pacing: PacingStore) -> None:
    # Given a state
    pacing.change_pacing("rate:ses", increment)

    def broken(state: PacingState | None) -> tuple[PacingState, None]:
        raise ValueError("no")

    # When a change fails
    with pytest.raises(ValueError):
        pacing.change_pacing("rate:ses", broken)
    # Then the state is as it was, and the store still works
    assert pacing.pacing_state("rate:ses") == {"n": 1}
    assert pacing.change_pacing("rate:ses", increment) == 2


def test_a_writer_that_comes_in_between_is_never_lost(
    pacing: PacingStore, request: pytest.FixtureRequest
) -> None:
    # Given a state, and a change that, on its first run, lets another writer try to increment
    # the same key (from another thread) before it writes
    pacing.change_pacing("rate:ses", increment)
    locking = request.node.callspec.params["pacing"] in LOCKING
    other_done = threading.Event()
    calls: list[PacingState | None] = []

    def other_writer() -> None:
        pacing.change_pacing("rate:ses", increment)
        other_done.set()

    other = threading.Thread(target=other_writer)

    def interleaved(state: PacingState | None) -> tuple[PacingState, int]:
        calls.append(state)
        if len(calls) == 1:
            other.start()
            # A locking store makes the other writer wait for this change: give it a moment only.
            other_done.wait(timeout=0.2 if locking else 10.0)
        return increment(state)

    # When both write
    result = pacing.change_pacing("rate:ses", interleaved)
    other.join(timeout=30)
    # Then both increments count
    assert pacing.pacing_state("rate:ses") == {"n": 3}
    if locking:
        # the other writer waited: this change ran once, on the state before both
        assert calls == [{"n": 1}]
        assert result == 2
    else:
        # the other writer won: this change ran again, on what the winner wrote
        assert calls == [{"n": 1}, {"n": 2}]
        assert result == 3


def test_concurrent_increments_are_all_counted(pacing: PacingStore) -> None:
    # Given 8 threads that each increment the same key 50 times at once
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            start.wait()
            for _ in range(50):
                pacing.change_pacing("rate:ses", increment)
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    # When they all run
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # Then exactly 400 increments were applied: none lost, none doubled
    assert errors == []
    assert pacing.pacing_state("rate:ses") == {"n": 400}


def test_a_pacer_shared_by_threads_never_grants_more_than_the_rate(pacing: PacingStore) -> None:
    # Given one Pacer over the store, shared by 4 sender threads of two accounts that all reserve
    # at once, round after round, while a ManualClock moves a quarter second between rounds
    rate, horizon, rounds, step = 20.0, 1.0, 40, 0.25
    clock = ManualClock()
    pacer = Pacer(pacing, lambda route: RouteLimit(rate=rate), clock, horizon)
    start_round, end_round = threading.Barrier(5), threading.Barrier(5)
    grants: list[tuple[float, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def sender(account: str) -> None:
        for _ in range(rounds):
            start_round.wait()
            try:
                while isinstance(got := pacer.reserve("ses", Lane.BULK, account, 7), Grant):
                    with lock:
                        grants.append((got.start, got.count))
            except BaseException as exc:  # reported below: a thread's failure must fail the test
                errors.append(exc)
            end_round.wait()

    threads = [threading.Thread(target=sender, args=(f"acc_{n % 2}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    # When the rounds run
    for _ in range(rounds):
        start_round.wait()
        end_round.wait()
        clock.advance(step)
    for thread in threads:
        thread.join(timeout=60)
    # Then no window of grant starts holds more than rate * its length + one burst
    assert errors == []
    grants.sort()
    counts = list(itertools.accumulate((count for _, count in grants), initial=0))
    worst = max(
        counts[j + 1] - counts[i] - rate * (grants[j][0] - grants[i][0])
        for i in range(len(grants))
        for j in range(i, len(grants))
    )
    assert worst <= rate * BURST_SECONDS + 1e-3
    # and together they used the rate: the slots were shared, not lost
    assert counts[-1] >= 0.95 * rate * rounds * step


def test_an_existing_sqlite_database_gains_the_pacing_table(tmp_path: Path) -> None:
    # Given a database written by a version without pacing
    path = tmp_path / "old.sqlite3"
    Database(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE pacing")
        conn.execute("INSERT INTO schedules (name, at, payload, created_at) VALUES ('s', 1, '{}', 1)")
    conn.close()
    # When the new version opens it
    db = Database(path)
    try:
        store = SqliteStore(db)
        # Then pacing works, and what was there is still there
        assert store.change_pacing("rate:ses", increment) == 1
        assert store.pacing_state("rate:ses") == {"n": 1}
        assert db.connection().execute("SELECT name FROM schedules").fetchone()["name"] == "s"
    finally:
        db.close()

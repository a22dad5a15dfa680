"""What every SQLite aggregate shares: the database file and the clock its writes stamp."""

from __future__ import annotations

from enum import StrEnum

from mailsage.adapters.sqlite.db import Database
from mailsage.domain.clock import Clock, system_clock


def sql_list(values: frozenset[StrEnum]) -> str:
    """`('a', 'b')` for an SQL IN clause of state values (enum members, never user input)."""
    return "(" + ", ".join(f"'{v.value}'" for v in sorted(values)) + ")"


class SqliteTables:
    """Base of each aggregate's adapter: one `Database` (a connection per thread) and a clock.
    Each aggregate class works alone (a service that needs one port can take just it), and
    `SqliteStore` composes them all over the same file."""

    def __init__(self, db: Database, clock: Clock = system_clock) -> None:
        self.db = db
        self.clock = clock

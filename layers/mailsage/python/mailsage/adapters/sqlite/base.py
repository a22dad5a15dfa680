"""What every SQLite aggregate shares: the database file and the clock its writes stamp."""

from __future__ import annotations

from mailsage.adapters.sqlite.db import Database
from mailsage.domain.clock import Clock, system_clock


class SqliteTables:
    """Base of each aggregate's adapter: one `Database` (a connection per thread) and a clock.
    Each aggregate class works alone (a service that needs one port can take just it), and
    `SqliteStore` composes them all over the same file."""

    def __init__(self, db: Database, clock: Clock = system_clock) -> None:
        self.db = db
        self.clock = clock

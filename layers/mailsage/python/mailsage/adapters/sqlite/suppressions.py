"""SuppressionStore on SQLite. Addresses and domains are stored lower-cased; a suppression for
every sender domain has domain '' (the column is part of the primary key)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mailsage.adapters.sqlite import records
from mailsage.adapters.sqlite.base import SqliteTables
from mailsage.domain.models import Suppression

_MAX_PARAMETERS = 500  # addresses per statement, under SQLite's bound-parameter limit


def _address_filters(email: str | None, domain: str | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if email:
        where.append("email = ?")
        args.append(email.lower())
    if domain:
        where.append("domain = ?")
        args.append(domain.lower())
    return where, args


class SqliteSuppressions(SqliteTables):
    def put_suppression(self, suppression: Suppression) -> None:
        self.db.connection().execute(
            "INSERT OR REPLACE INTO suppressions (account_id, email, domain, id, reason, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                suppression.account_id,
                suppression.email.lower(),
                (suppression.domain or "").lower(),
                suppression.id,
                suppression.reason,
                suppression.created_at,
                suppression.expires_at,
            ),
        )

    def list_suppressions(
        self,
        account_id: str,
        email: str | None,
        domain: str | None,
        from_time: float | None,
        to_time: float | None,
        limit: int,
        after: str | None,
    ) -> tuple[list[Suppression], bool]:
        where, args = _address_filters(email, domain)
        where = ["account_id = ?", "expires_at > ?", *where]
        args = [account_id, self.clock(), *args]
        if from_time is not None:
            where.append("created_at >= ?")
            args.append(from_time)
        if to_time is not None:
            where.append("created_at <= ?")
            args.append(to_time)
        if after:
            where.append("id > ?")
            args.append(after)
        rows = (
            self.db.connection()
            .execute(
                f"SELECT * FROM suppressions WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
                (*args, limit + 1),
            )
            .fetchall()
        )
        return [records.suppression(r) for r in rows[:limit]], len(rows) > limit

    def delete_suppressions(self, account_id: str, email: str | None, domain: str | None) -> int:
        where, args = _address_filters(email, domain)
        where = ["account_id = ?", *where]
        args = [account_id, *args]
        return (
            self.db.connection()
            .execute(f"DELETE FROM suppressions WHERE {' AND '.join(where)}", args)
            .rowcount
        )

    def suppressed(self, account_id: str, emails: Sequence[str], domain: str | None, now: float) -> set[str]:
        lowered = sorted({e.lower() for e in emails})
        found: set[str] = set()
        for start in range(0, len(lowered), _MAX_PARAMETERS):
            part = lowered[start : start + _MAX_PARAMETERS]
            rows = self.db.connection().execute(
                f"SELECT email FROM suppressions WHERE account_id = ? AND email IN ({','.join('?' * len(part))})"
                " AND expires_at > ? AND (domain = '' OR domain = ?)",
                (account_id, *part, now, (domain or "").lower()),
            )
            found.update(r[0] for r in rows)
        return found

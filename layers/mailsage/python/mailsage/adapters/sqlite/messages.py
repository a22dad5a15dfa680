"""MessageStore on SQLite: one message as the API and delivery feedback see it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mailsage.adapters.sqlite import records
from mailsage.adapters.sqlite.base import SqliteTables
from mailsage.domain.models import EngagementKind, Message, MessageQuery, MessageStatus

# The counter column of each engagement kind (ENGAGEMENT_KINDS): counts stay cheap to read.
_ENGAGEMENT_COLUMNS: dict[str, str] = {
    EngagementKind.OPENED: "open_count",
    EngagementKind.CLICKED: "click_count",
    EngagementKind.UNSUBSCRIBED: "unsubscribe_count",
}


def _filters(account_id: str, query: MessageQuery) -> tuple[list[str], list[Any]]:
    """The WHERE terms and their arguments of a listing (m: the message, j: its job)."""
    where: list[str] = ["m.account_id = ?"]
    args: list[Any] = [account_id]
    if query.statuses:
        where.append(f"m.status IN ({','.join('?' * len(query.statuses))})")
        args += list(query.statuses)
    if query.recipient:
        where.append("lower(m.email) = lower(?)")
        args.append(query.recipient)
    if query.sender:
        where.append("instr(lower(json_extract(j.content, '$.from')), lower(?)) > 0")
        args.append(query.sender)
    if query.subject:
        where.append("instr(lower(m.subject), lower(?)) > 0")
        args.append(query.subject)
    if query.message_id:
        where.append("m.id = ?")
        args.append(query.message_id)
    for tag in query.tags:
        where.append("EXISTS (SELECT 1 FROM json_each(j.content, '$.tags') WHERE value = ?)")
        args.append(tag)
    if query.from_time is not None:
        where.append("m.created_at >= ?")
        args.append(query.from_time)
    if query.to_time is not None:
        where.append("m.created_at <= ?")
        args.append(query.to_time)
    return where, args


class SqliteMessages(SqliteTables):
    def get_message(self, account_id: str, message_id: str) -> Message | None:
        row = (
            self.db.connection()
            .execute("SELECT * FROM messages WHERE id = ? AND account_id = ?", (message_id, account_id))
            .fetchone()
        )
        return records.message(row) if row else None

    def list_messages(self, account_id: str, query: MessageQuery) -> tuple[list[Message], bool]:
        where, args = _filters(account_id, query)
        order = self._page_from_cursor(account_id, query, where, args)
        rows = (
            self.db.connection()
            .execute(
                f"SELECT m.* FROM messages m JOIN jobs j ON j.id = m.job_id WHERE {' AND '.join(where)}"
                f" ORDER BY m.created_at {order}, m.id {order} LIMIT ?",
                (*args, query.limit + 1),
            )
            .fetchall()
        )
        more = len(rows) > query.limit
        messages = [records.message(r) for r in rows[: query.limit]]
        if order == "ASC":
            messages.reverse()
        return messages, more

    def _page_from_cursor(
        self, account_id: str, query: MessageQuery, where: list[str], args: list[Any]
    ) -> str:
        """Add the cursor's position to `where`/`args`; returns the scan order (DESC or ASC)."""
        cursor = query.after or query.before
        if not cursor:
            return "DESC"
        anchor = (
            self.db.connection()
            .execute(
                "SELECT created_at, id FROM messages WHERE id = ? AND account_id = ?",
                (cursor, account_id),
            )
            .fetchone()
        )
        if anchor is None:
            return "DESC"
        # Newest first: "after" pages towards older messages, "before" towards newer ones.
        where.append("(m.created_at, m.id) < (?, ?)" if query.after else "(m.created_at, m.id) > (?, ?)")
        args += [anchor["created_at"], anchor["id"]]
        return "DESC" if query.after else "ASC"

    def cancel_message(self, account_id: str, message_id: str) -> bool:
        now = self.clock()
        cur = self.db.connection().execute(
            "UPDATE messages SET status = 'cancelled', updated_at = ?, events = json_insert(events, '$[#]', json(?))"
            " WHERE id = ? AND account_id = ? AND status = 'scheduled'",
            (
                now,
                records.event_json(now, "cancelled", "cancelled before its first attempt"),
                message_id,
                account_id,
            ),
        )
        return cur.rowcount == 1

    def update_delivery_status(
        self,
        account_id: str,
        message_id: str,
        to: MessageStatus,
        allowed_from: Iterable[MessageStatus],
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        states = [s.value for s in allowed_from]
        now = self.clock()
        cur = self.db.connection().execute(
            "UPDATE messages SET status = ?, error_code = coalesce(?, error_code),"
            " error_message = coalesce(?, error_message), updated_at = ?,"
            " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END,"
            " events = json_insert(events, '$[#]', json(?))"
            f" WHERE id = ? AND account_id = ? AND status IN ({','.join('?' * len(states))})",
            (
                to.value,
                error_code,
                error_message,
                now,
                to.value,
                now,
                records.event_json(now, to.value, error_message or to.value),
                message_id,
                account_id,
                *states,
            ),
        )
        return cur.rowcount == 1

    def record_engagement(
        self, account_id: str, message_id: str, kind: str, at: float, detail: str | None = None
    ) -> int | None:
        column = _ENGAGEMENT_COLUMNS.get(kind)
        if column is None:
            raise ValueError(f"unknown engagement kind {kind!r}")
        # One statement counts and logs, so concurrent opens each get their own number.
        rows = (
            self.db.connection()
            .execute(
                f"UPDATE messages SET {column} = {column} + 1, events = json_insert(events, '$[#]', json(?))"
                f" WHERE id = ? AND account_id = ? RETURNING {column}",
                (records.event_json(at, kind, detail), message_id, account_id),
            )
            .fetchall()  # to the end: the statement (and its autocommit) completes
        )
        return int(rows[0][0]) if rows else None

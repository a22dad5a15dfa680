"""RetentionStore on SQLite: SQLite has no TTL, so the runtime's scheduler loop calls
purge_expired about once a minute and this applies every retention rule in one transaction."""

from __future__ import annotations

from mailsage.adapters.sqlite.base import SqliteTables, sql_list
from mailsage.domain.job_states import FINAL
from mailsage.domain.models import MESSAGE_UNSENT

# A finished job's content goes once none of its messages still keeps data (or may still be sent).
_PURGE_JOB_CONTENT = (
    "UPDATE jobs SET content = json_set(content, '$.text', NULL, '$.html', NULL, '$.amp', NULL,"
    " '$.attachments', json('[]'), '$.purged', json('true'))"
    f" WHERE retention_data_days IS NOT NULL AND state IN {sql_list(FINAL)}"
    " AND json_extract(content, '$.purged') IS NULL AND NOT EXISTS ("
    "   SELECT 1 FROM messages WHERE job_id = jobs.id AND (data_until IS NOT NULL"
    f"   OR status IN {sql_list(MESSAGE_UNSENT)}))"
)


class SqliteRetention(SqliteTables):
    def purge_expired(self, now: float) -> int:
        with self.db.transaction() as conn:
            data = conn.execute(
                "UPDATE messages SET variables = '{}', data_until = NULL WHERE data_until <= ?", (now,)
            ).rowcount
            gone = conn.execute("DELETE FROM messages WHERE metadata_until <= ?", (now,)).rowcount
            conn.execute(_PURGE_JOB_CONTENT)
            conn.execute(
                "DELETE FROM jobs WHERE retention_metadata_days IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM messages WHERE job_id = jobs.id)"
            )
            conn.execute("DELETE FROM webhook_deliveries WHERE expires_at <= ?", (now,))
        return data + gone

"""TemplateStore on SQLite: every statement is scoped by account."""

from __future__ import annotations

from mailsage.adapters.sqlite import records
from mailsage.adapters.sqlite.base import SqliteTables
from mailsage.domain.models import Template


class SqliteTemplates(SqliteTables):
    def put_template(self, template: Template) -> None:
        self.db.connection().execute(
            "INSERT OR REPLACE INTO templates (account_id, id, name, subject, html, text, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                template.account_id,
                template.id,
                template.name,
                template.subject,
                template.html,
                template.text,
                template.created_at,
                template.updated_at,
            ),
        )

    def get_template(self, account_id: str, template_id: str) -> Template | None:
        row = (
            self.db.connection()
            .execute("SELECT * FROM templates WHERE account_id = ? AND id = ?", (account_id, template_id))
            .fetchone()
        )
        return records.template(row) if row else None

    def list_templates(self, account_id: str, limit: int, after: str | None) -> list[Template]:
        rows = self.db.connection().execute(
            "SELECT * FROM templates WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?",
            (account_id, after or "", limit),
        )
        return [records.template(r) for r in rows]

    def delete_template(self, account_id: str, template_id: str) -> bool:
        cur = self.db.connection().execute(
            "DELETE FROM templates WHERE account_id = ? AND id = ?", (account_id, template_id)
        )
        return cur.rowcount == 1

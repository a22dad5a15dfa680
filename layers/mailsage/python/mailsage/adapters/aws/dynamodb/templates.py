"""Templates, per account."""

from __future__ import annotations

from mailsage.adapters.aws.dynamodb.client import TableClient
from mailsage.adapters.aws.dynamodb.keys import TEMPLATE_PREFIX, template_key
from mailsage.adapters.aws.dynamodb.records import decode_template
from mailsage.domain.models import Template


class Templates(TableClient):
    """TemplateStore on the table."""

    def put_template(self, template: Template) -> None:
        self._put(
            {
                **template_key(template.account_id, template.id),
                "id": template.id,
                "account_id": template.account_id,
                "name": template.name,
                "subject": template.subject,
                "html": template.html,
                "text": template.text,
                "created_at": template.created_at,
                "updated_at": template.updated_at,
            }
        )

    def get_template(self, account_id: str, template_id: str) -> Template | None:
        item = self._get(template_key(account_id, template_id))
        return decode_template(item) if item else None

    def list_templates(self, account_id: str, limit: int, after: str | None) -> list[Template]:
        if limit <= 0:
            return []
        items = self._query(
            "#pk = :pk AND begins_with(#sk, :prefix)",
            {":pk": f"ACCOUNT#{account_id}", ":prefix": TEMPLATE_PREFIX},
            start=template_key(account_id, after) if after is not None else None,
            limit=limit,
        )
        return [decode_template(item) for item in items]

    def delete_template(self, account_id: str, template_id: str) -> bool:
        return self._delete(template_key(account_id, template_id))

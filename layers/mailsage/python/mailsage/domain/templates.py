"""Stored templates: CRUD scoped by account, checked by compiling on every write, and preview."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailsage.domain.clock import Clock, system_clock
from mailsage.domain.header_values import header_text_problem
from mailsage.domain.models import Template, new_id
from mailsage.domain.rendering import CompiledContent, Rendered, check_content_size
from mailsage.errors import NotFound, ValidationFailed
from mailsage.ports import TemplateStore


@dataclass(slots=True)
class TemplateDraft:
    name: str
    subject: str
    html: str | None = None
    text: str | None = None


def _check(draft: TemplateDraft, max_content_bytes: int) -> None:
    if draft.html is None and draft.text is None:
        raise ValidationFailed("a template needs html, text or both")
    problem = header_text_problem(draft.subject, tab=False)
    if problem:
        raise ValidationFailed(f"subject must not contain {problem}", {"field": "subject"})
    check_content_size(draft.subject, draft.text, draft.html, max_content_bytes)
    # raises TemplateError on bad syntax, and on constant expressions over the limits
    CompiledContent(draft.subject, draft.text, draft.html, max_bytes=max_content_bytes)


class TemplateService:
    def __init__(
        self, templates: TemplateStore, max_content_bytes: int = 300_000, clock: Clock = system_clock
    ) -> None:
        self.templates = templates
        self.max_content_bytes = max_content_bytes
        self.clock = clock

    def create(self, account_id: str, draft: TemplateDraft) -> Template:
        _check(draft, self.max_content_bytes)
        now = self.clock()
        template = Template(
            new_id("tpl"), account_id, draft.name, draft.subject, draft.html, draft.text, now, now
        )
        self.templates.put_template(template)
        return template

    def get(self, account_id: str, template_id: str) -> Template:
        template = self.templates.get_template(account_id, template_id)
        if template is None:
            raise NotFound(f"template {template_id!r} not found")
        return template

    def list(self, account_id: str, limit: int, after: str | None) -> list[Template]:
        return self.templates.list_templates(account_id, limit, after)

    def update(self, account_id: str, template_id: str, draft: TemplateDraft) -> Template:
        current = self.get(account_id, template_id)
        _check(draft, self.max_content_bytes)
        updated = Template(
            current.id,
            account_id,
            draft.name,
            draft.subject,
            draft.html,
            draft.text,
            current.created_at,
            self.clock(),
        )
        self.templates.put_template(updated)
        return updated

    def delete(self, account_id: str, template_id: str) -> None:
        if not self.templates.delete_template(account_id, template_id):
            raise NotFound(f"template {template_id!r} not found")

    def preview(self, account_id: str, template_id: str, variables: dict[str, Any]) -> Rendered:
        template = self.get(account_id, template_id)
        compiled = CompiledContent(
            template.subject, template.text, template.html, max_bytes=self.max_content_bytes
        )
        return compiled.render(variables)

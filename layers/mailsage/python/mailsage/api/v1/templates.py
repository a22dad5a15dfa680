"""`/api/v1/templates`: CRUD and preview."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from mailsage.api.dependencies import AccountId, Services
from mailsage.api.v1.models import (
    PreviewReply,
    PreviewRequest,
    TemplateIn,
    TemplateList,
    TemplateReply,
    iso,
    responses,
)
from mailsage.domain.models import Template
from mailsage.domain.templates import TemplateDraft

router = APIGatewayRouter()


def _reply(t: Template) -> TemplateReply:
    return TemplateReply(
        template_id=t.id,
        name=t.name,
        subject=t.subject,
        html=t.html,
        text=t.text,
        created_at=iso(t.created_at) or "",
        updated_at=iso(t.updated_at) or "",
    )


def _draft(body: TemplateIn) -> TemplateDraft:
    return TemplateDraft(name=body.name, subject=body.subject, html=body.html, text=body.text)


@router.post("", responses=responses(201, TemplateReply, 400), summary="Create a template")
def create_template(body: TemplateIn, services: Services, account_id: AccountId) -> Response[TemplateReply]:
    template = services.templates.create(account_id, _draft(body))
    return Response(201, content_types.APPLICATION_JSON, _reply(template))


@router.get("", responses=responses(200, TemplateList, 400), summary="List templates")
def list_templates(
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    after: Annotated[str | None, Query(max_length=128)] = None,
    *,
    services: Services,
    account_id: AccountId,
) -> TemplateList:
    templates = services.templates.list(account_id, limit, after)
    return TemplateList(
        data=[_reply(t) for t in templates],
        next_cursor=templates[-1].id if len(templates) == limit else None,
    )


@router.get("/<template_id>", responses=responses(200, TemplateReply, 404), summary="Get a template")
def get_template(template_id: str, services: Services, account_id: AccountId) -> TemplateReply:
    return _reply(services.templates.get(account_id, template_id))


@router.put("/<template_id>", responses=responses(200, TemplateReply, 400, 404), summary="Replace a template")
def update_template(
    template_id: str, body: TemplateIn, services: Services, account_id: AccountId
) -> TemplateReply:
    return _reply(services.templates.update(account_id, template_id, _draft(body)))


@router.delete("/<template_id>", responses=responses(204, None, 404), summary="Delete a template")
def delete_template(template_id: str, services: Services, account_id: AccountId) -> Response[None]:
    services.templates.delete(account_id, template_id)
    return Response(204)


@router.post(
    "/<template_id>/preview",
    responses=responses(200, PreviewReply, 400, 404),
    summary="Render a template with variables",
)
def preview_template(
    template_id: str, body: PreviewRequest, services: Services, account_id: AccountId
) -> PreviewReply:
    rendered = services.templates.preview(account_id, template_id, body.variables)
    return PreviewReply(subject=rendered.subject, html=rendered.html, text=rendered.text)

"""What a route is given, through Powertools' `Depends`: the request's services and the caller's
account, which the gate (`mailsage.api.security`) put on the app's context once it authenticated
the request, and the services derived from them.

A route declares what it needs, e.g.
`services: Services`, `account: Annotated[str,
Depends(current_account)]`; a test replaces any of these functions with
`app.dependency_overrides[api_services_dep] = ...` instead of patching a class. The context is the
resolving app's own (`mailsage.api.resolver` keeps it per request), so a module-level router
shared by several apps still reads the request it is answering.

Powertools calls an override with the sub-dependencies of the function it replaces, so an override
of one that takes `services` accepts them: `dependency_overrides[webhook_service_dep] = lambda **_:
fake`. Overriding `api_services_dep` reaches every service derived from it.
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.request import Request
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from mailsage.domain.campaigns import CampaignService
from mailsage.domain.engagement import Visitor
from mailsage.domain.idempotency import IdempotencyService
from mailsage.domain.webhooks import WebhookService
from mailsage.wiring import ApiServices

# Keys of the app's context, set by the gate.
SERVICES = "mailsage_services"
ACCOUNT = "mailsage_account"


def api_services_dep(request: Request) -> ApiServices:
    """The domain services of the app answering this request."""
    services: ApiServices = request.context[SERVICES]
    return services


def current_account(request: Request) -> str:
    """The authenticated caller's account id ("" on the public tracking and unsubscribe paths)."""
    account: str = request.context[ACCOUNT]
    return account


# What a route declares: `services: Services, account_id: AccountId`.
Services = Annotated[ApiServices, Depends(api_services_dep)]
AccountId = Annotated[str, Depends(current_account)]


def webhook_service_dep(services: Services) -> WebhookService:
    return services.webhooks


def campaign_service_dep(services: Services) -> CampaignService:
    return services.campaigns


def idempotency_service_dep(services: Services) -> IdempotencyService:
    return services.idempotency


Webhooks = Annotated[WebhookService, Depends(webhook_service_dep)]
Campaigns = Annotated[CampaignService, Depends(campaign_service_dep)]
Idempotency = Annotated[IdempotencyService, Depends(idempotency_service_dep)]


def visitor(request: Request) -> Visitor:
    """Who followed a tracking link: their user agent and address, as the request reports them."""
    event = request.resolved_event
    ip = event.request_context.identity.source_ip if isinstance(event, APIGatewayProxyEvent) else ""
    return Visitor(user_agent=event.headers.get("user-agent", "") or "", ip=ip or "")


def request_base_url(request: Request) -> str | None:
    """The API's base URL as this request reached it (`https://{domain}/{stage}`), or None when the
    event does not say (a direct invocation). On AWS the api function is not told its own URL (its
    template would refer to itself); it is the sender's public URL, which tracked links use."""
    event = request.resolved_event
    if not isinstance(event, APIGatewayProxyEvent):
        return None
    context = event.request_context
    domain, stage = context.domain_name, context.stage
    return f"https://{domain}/{stage}" if domain and stage else None


BaseUrl = Annotated[str | None, Depends(request_base_url)]

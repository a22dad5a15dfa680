"""Compose the API resolver: middleware, error mapping and the routers of each surface."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from mailsage.api import errors, security
from mailsage.api.v1 import emails, templates
from mailsage.settings import ApiSettings


def create_app(settings: ApiSettings) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)
    gate = security.gate(settings)
    app.use(middlewares=[security.middleware(gate)])
    errors.install(app, gate)
    app.include_router(emails.router, prefix="/api/v1/emails")
    app.include_router(templates.router, prefix="/api/v1/templates")
    return app

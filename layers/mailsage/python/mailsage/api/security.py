"""The gate every v1 request passes: size limit, content type, then API key -> account id.

Powertools validates the body before user middlewares run, so the gate runs in two places: as a
middleware on valid requests, and from the validation-error handler, so that an unauthenticated or
oversized request is answered 401/413/415 rather than 400 whatever its body holds.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from mailsage.errors import PayloadTooLarge, UnsupportedMediaType
from mailsage.settings import ApiSettings
from mailsage.wiring import ApiServices, api_services

# The authenticated request's services and account. A context variable rather than the resolver's
# context, because module-level routers follow whichever app included them last.
_current: ContextVar[tuple[ApiServices, str]] = ContextVar("mailsage_request")

Gate = Callable[[APIGatewayRestResolver], tuple[ApiServices, str]]


def gate(settings: ApiSettings) -> Gate:
    def check(app: APIGatewayRestResolver) -> tuple[ApiServices, str]:
        event = app.current_event
        body = event.body or ""
        size = len(body) if body.isascii() else len(body.encode())  # the limit is in bytes
        if size > settings.max_request_bytes:
            raise PayloadTooLarge(
                f"the request body is {size} bytes; the limit is {settings.max_request_bytes}"
            )
        content_type = event.headers.get("content-type", "")
        if body and content_type and not content_type.lower().startswith("application/json"):
            raise UnsupportedMediaType(
                f"Content-Type must be application/json, got {content_type!r}"
                " (with curl, add -H 'Content-Type: application/json')"
            )
        services = api_services(settings)
        return services, services.auth.authenticate(event.headers.get("authorization"))

    return check


def middleware(check: Gate) -> Callable[[APIGatewayRestResolver, NextMiddleware], Response]:
    def authenticate(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
        token = _current.set(check(app))
        try:
            return next_middleware(app)
        finally:
            _current.reset(token)

    return authenticate


def services_of() -> tuple[ApiServices, str]:
    """(services, account id) of the request being handled."""
    return _current.get()

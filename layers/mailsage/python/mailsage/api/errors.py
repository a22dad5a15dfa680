"""The v1 error envelope `{"error": {"code", "message", "details"?}}` and the one place where
exceptions become HTTP replies."""

from __future__ import annotations

import logging
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from mailsage.api.security import Gate
from mailsage.errors import (
    Conflict,
    InvalidRecipient,
    MailSageError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    TemplateError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)

log = logging.getLogger(__name__)

STATUS: dict[type[MailSageError], int] = {
    ValidationFailed: 400,
    InvalidRecipient: 400,
    TemplateError: 400,
    Unauthorized: 401,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    RateLimited: 429,
}


def envelope(status: int, code: str, message: str, details: Any = None) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(status, content_types.APPLICATION_JSON, {"error": error}, headers=headers)


def _describe(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Field paths and pydantic's messages; never the input (it may be large or sensitive).
    return [
        {
            "field": ".".join(str(p) for p in e.get("loc", ())[1:]) or "body",
            "type": e.get("type"),
            "message": e.get("msg"),
        }
        for e in errors
    ]


def domain_error(exc: MailSageError) -> Response:
    status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 500)
    return envelope(status, exc.code, exc.message, exc.details)


def install(app: APIGatewayRestResolver, gate: Gate) -> None:
    app.exception_handler(MailSageError)(domain_error)

    @app.exception_handler(RequestValidationError)
    def invalid_request(exc: RequestValidationError) -> Response:
        try:
            gate(app)  # size, content type and credentials are answered before the body's shape
        except MailSageError as gate_error:
            return domain_error(gate_error)
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return envelope(400, "validation_error", "the request body is not valid JSON")
        return envelope(400, "validation_error", "the request is invalid", _describe(list(errors)))

    @app.exception_handler(RequestUnsupportedContentType)
    def unsupported_content(exc: RequestUnsupportedContentType) -> Response:
        # Powertools refuses content types it cannot parse before our gate runs; the gate gives
        # the reply (401 without a key, otherwise 415).
        try:
            gate(app)
        except MailSageError as gate_error:
            return domain_error(gate_error)
        return domain_error(UnsupportedMediaType("Content-Type must be application/json"))

    @app.not_found
    def no_route(exc: NotFoundError) -> Response:
        event = app.current_event
        return envelope(404, "not_found", f"no route for {event.http_method} {event.path}")

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return envelope(500, "internal_error", "an unexpected error occurred; it has been logged")

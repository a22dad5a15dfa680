"""The one place where exceptions become HTTP replies, in the envelope of the surface the request
belongs to (decided by its path, `surface`):

- v1 (`/api/v1/...`): `{"error": {"code", "message", "details"?}}`;
- v2 (`/v2/...`, the AhaSend-compatible surface): the contract's `{"message": "..."}` and its
  status codes; what v1 answers 411, 413, 414, 415 or 431 is a 400 there (the contract has none of
  them). A method a path does not have is a 405 with `Allow` on both: no operation of the contract
  is involved.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from mailsage.api import rate_limits
from mailsage.api.security import Gate
from mailsage.errors import (
    Conflict,
    Forbidden,
    InvalidRecipient,
    MailSageError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
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
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    RateLimited: 429,
    ServiceUnavailable: 503,
}

V2_PREFIX = "/v2/"
# Statuses the AhaSend contract does not have (the last three come from the local HTTP layer).
_V2_STATUS = {413: 400, 415: 400, 411: 400, 414: 400, 431: 400}


def surface(path: str) -> str:
    """ "v2" for the AhaSend-compatible surface, "v1" for everything else."""
    return "v2" if path.startswith(V2_PREFIX) or path == V2_PREFIX.rstrip("/") else "v1"


def envelope(status: int, code: str, message: str, details: Any = None) -> Response:
    """The v1 error reply."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(status, content_types.APPLICATION_JSON, {"error": error}, headers=headers)


def v2_envelope(status: int, message: str) -> Response:
    """The v2 error reply (the contract's ErrorResponse)."""
    status = _V2_STATUS.get(status, status)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(status, content_types.APPLICATION_JSON, {"message": message}, headers=headers)


def error_reply(path: str, status: int, code: str, message: str, details: Any = None) -> Response:
    """An error reply in the envelope of the surface `path` belongs to."""
    if surface(path) == "v2":
        return v2_envelope(status, message)
    return envelope(status, code, message, details)


def method_not_allowed(path: str, method: str, allowed: list[str]) -> Response:
    reply = error_reply(
        path, 405, "method_not_allowed", f"{method} is not allowed on {path}; allowed: {', '.join(allowed)}"
    )
    reply.headers["Allow"] = ", ".join(allowed)
    return reply


def domain_error(exc: MailSageError, path: str = "") -> Response:
    status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 500)
    reply = error_reply(path, status, exc.code, exc.message, exc.details)
    if isinstance(exc, ServiceUnavailable | RateLimited):
        reply.headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, RateLimited) and exc.quota is not None:
        reply.headers.update(rate_limits.headers(exc.quota))
    return reply


def _field(loc: tuple[Any, ...], indexed: bool) -> str:
    parts = [str(p) for p in loc[1:]]
    if not indexed:
        return ".".join(parts) or "body"
    name = ""
    for part in loc[1:]:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _describe(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Field paths and pydantic's messages; never the input (it may be large or sensitive).
    return [
        {"field": _field(tuple(e.get("loc", ())), False), "type": e.get("type"), "message": e.get("msg")}
        for e in errors
    ]


def _summary(errors: list[dict[str, Any]], limit: int = 5) -> str:
    """One sentence naming each wrong field, for the v2 `message`."""
    phrases = []
    for e in errors[:limit]:
        field = _field(tuple(e.get("loc", ())), True)
        text = str(e.get("msg") or "is invalid").removeprefix("Value error, ")
        if e.get("type") == "missing":
            phrases.append("the request body is required" if field == "body" else f"{field} is required")
        elif field == "body":
            phrases.append(f"the request body is invalid: {text}")
        else:
            phrases.append(f"{field}: {text}")
    if len(errors) > limit:
        phrases.append(f"and {len(errors) - limit} more")
    return "; ".join(phrases) or "the request is invalid"


def install(app: APIGatewayRestResolver, gate: Gate) -> None:
    """Register the exception handlers of `app`; `gate` answers a refused request before its body."""

    def path() -> str:
        return app.current_event.path or ""

    def gated(reply: Callable[[], Response]) -> Response:
        """The gate's refusal (size, content type, credentials) if any, else `reply()`."""
        try:
            gate(app)
        except MailSageError as gate_error:
            return domain_error(gate_error, path())
        return reply()

    @app.exception_handler(MailSageError)
    def mailsage_error(exc: MailSageError) -> Response:
        return domain_error(exc, path())

    @app.exception_handler(RequestValidationError)
    def invalid_request(exc: RequestValidationError) -> Response:
        # Size, content type and credentials are answered before the body's shape.
        return gated(lambda: _invalid_request(path(), list(exc.errors())))

    @app.exception_handler(RequestUnsupportedContentType)
    def unsupported_content(exc: RequestUnsupportedContentType) -> Response:
        # Powertools refuses content types it cannot parse before our gate runs; the gate gives
        # the reply (401 without a key, otherwise 415).
        return gated(
            lambda: domain_error(UnsupportedMediaType("Content-Type must be application/json"), path())
        )

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return error_reply(path(), 500, "internal_error", "an unexpected error occurred; it has been logged")

    @app.exception_handler(ValueError)
    def unreadable_body(exc: ValueError) -> Response:
        # Powertools decodes the body before our gate runs: bytes that are not UTF-8 raise
        # UnicodeDecodeError, multipart/form-data without a boundary a ValueError. The gate still
        # answers first (401 without a key, 413, 415 for a body that is not JSON).
        event = app.current_event
        not_utf8 = isinstance(exc, UnicodeDecodeError) and not _utf8_body(event.body, event.is_base64_encoded)
        multipart = event.headers.get("content-type", "").lower().startswith("multipart/")
        if not (not_utf8 or multipart):
            return unexpected(exc)  # a bug, not the request
        if not_utf8:
            return gated(
                lambda: error_reply(path(), 400, "validation_error", "the request body is not valid UTF-8")
            )
        return gated(
            lambda: domain_error(UnsupportedMediaType("Content-Type must be application/json"), path())
        )

    app.not_found(_no_route(app))


def _no_route(app: APIGatewayRestResolver) -> Callable[[NotFoundError], Response]:
    """404 for a path no route has; 405 with `Allow` for a method the path does not have."""

    def no_route(exc: NotFoundError) -> Response:
        event = app.current_event
        path = event.path or ""
        allowed = _methods(app, path)
        if allowed and event.http_method.upper() not in allowed:
            return method_not_allowed(path, event.http_method, allowed)
        return error_reply(path, 404, "not_found", f"no route for {event.http_method} {event.path}")

    return no_route


def _invalid_request(path: str, errors: list[dict[str, Any]]) -> Response:
    """The 400 for a request whose body or parameters failed validation."""
    invalid_json = [e for e in errors if e.get("type") == "json_invalid"]
    if invalid_json:
        reason = (invalid_json[0].get("ctx") or {}).get("error")
        message = "the request body is not valid JSON" + (f": {reason}" if reason else "")
        return error_reply(path, 400, "validation_error", message)
    if surface(path) == "v2":
        return v2_envelope(400, _summary(errors))
    return envelope(400, "validation_error", "the request is invalid", _describe(errors))


def _utf8_body(body: str | None, is_base64: bool | None) -> bool:
    if not body or not is_base64:
        return True
    try:
        base64.b64decode(body).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _methods(app: APIGatewayRestResolver, path: str) -> list[str]:
    """The methods the routes matching `path` have (Powertools keeps its routes in these lists)."""
    routes = app._static_routes + app._dynamic_routes
    stripped = app._remove_prefix(path)
    return sorted({route.method for route in routes if route.rule.match(stripped)})

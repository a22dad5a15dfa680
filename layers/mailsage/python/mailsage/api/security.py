"""The gate every request passes: size limit, content type, then API key -> account id, and on the
v2 surface (`/v2/accounts/{account_id}/...`) the key's account must be the one in the path (403),
then the account's request limit (429, `mailsage.api.rate_limits`).
What it finds, the services and the caller's account, goes on the app's context, where routes get
it through `Depends` (`mailsage.api.dependencies`).

Powertools validates the body before user middlewares run, so the gate runs in two places: as a
middleware on valid requests, and from the validation-error handler, so that an unauthenticated or
oversized request is answered 401/413/415 rather than 400 whatever its body holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from mailsage.api import docs, rate_limits
from mailsage.api.dependencies import ACCOUNT, SERVICES
from mailsage.errors import Forbidden, PayloadTooLarge, UnsupportedMediaType
from mailsage.settings import ApiSettings
from mailsage.wiring import ApiServices

# Paths recipients reach from their mail (api/tracking.py): signed URLs, no API key.
PUBLIC_PREFIXES = ("/t/", "/u/")

Gate = Callable[[APIGatewayRestResolver], tuple[ApiServices, str]]


def gate(settings: ApiSettings, services: Callable[[], ApiServices]) -> Gate:
    """The gate of the app built with `settings`; `services` gives the app's services (built on
    first use: creating the app must not open the store)."""

    def check(app: APIGatewayRestResolver) -> tuple[ApiServices, str]:
        event = app.current_event
        path = event.path or ""
        if path.startswith(PUBLIC_PREFIXES) or path in docs.PATHS:
            # Tracking and unsubscribe URLs: no key (recipients follow them), the token is signed.
            # The API's own description and explorer hold no account's data.
            return services(), ""
        body = event.body or ""
        size = body_bytes(body, bool(event.is_base64_encoded))
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
        found = services()
        account_id = found.auth.authenticate(event.headers.get("authorization"))
        check_path_account(event.path or "", account_id)
        rate_limits.admit(app, found.rate_limits, account_id)  # 429 over the account's limit
        return found, account_id

    return check


def body_bytes(body: str, is_base64: bool) -> int:
    """The size in bytes of the body the caller sent, measured without decoding it: on AWS every
    body arrives base64-encoded (4 characters per 3 bytes, `=` padding the last group)."""
    if is_base64:
        tail = body[-2:]
        return len(body) * 3 // 4 - (len(tail) - len(tail.rstrip("=")))
    return len(body) if body.isascii() else len(body.encode())


_V2_ACCOUNTS = "/v2/accounts/"


def check_path_account(path: str, account_id: str) -> None:
    """On `/v2/accounts/{account_id}/...`, the key must belong to that account (else 403)."""
    if not path.startswith(_V2_ACCOUNTS):
        return
    in_path = unquote(path[len(_V2_ACCOUNTS) :].partition("/")[0]).strip()
    if not _same_account(in_path, account_id):
        raise Forbidden(f"this API key does not belong to account {in_path!r}")


def _same_account(a: str, b: str) -> bool:
    try:
        return uuid.UUID(a) == uuid.UUID(b)  # any spelling of the same UUID
    except ValueError:
        return a == b


def middleware(check: Gate) -> Callable[[APIGatewayRestResolver, NextMiddleware], Response]:
    def authenticate(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
        services, account_id = check(app)
        # The context is this request's own and is cleared when it is answered.
        app.append_context(**{SERVICES: services, ACCOUNT: account_id})
        response = next_middleware(app)
        response.headers.update(rate_limits.reply_headers(app))
        return response

    return authenticate

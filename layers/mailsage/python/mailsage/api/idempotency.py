"""`Idempotency-Key` on the create operations of both surfaces (v1 and the AhaSend-compatible v2).

Runs after the gate, so the request is authenticated and its account known; Powertools has already
validated the body, so a request refused before it runs (401, 413, 415, 400 on the body's shape)
never touches a key. Which requests honour a key, and how they are matched, is
`mailsage.domain.idempotency`. Here:

- the first request runs; its reply is stored unless it is a 5xx or a 429 (the key is then
  released and the request may run again). It carries no `Idempotent-Replayed` header.
- the same request again: the stored status, body (byte for byte) and headers, with
  `Idempotent-Replayed: true`.
- the same request while the first still runs: 409 `idempotency_in_progress`,
  `Idempotent-Replayed: false`, `Retry-After`.
- the same key on a different method, path or body: 422 `idempotency_mismatch`.
- a key longer than 255 characters (or blank): 400 `validation_error`.

Errors use the surface's envelope: `{"error": {"code", "message"}}` on v1, `{"message"}` on /v2/.

A route's exception passes through this middleware before Powertools turns it into a reply, so the
reply is built here by the app's own exception handler, and a 4xx outcome is stored like any other.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.depends import DependencyResolutionError
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.shared.json_encoder import Encoder

from mailsage.api import errors
from mailsage.api.security import services_of
from mailsage.domain.idempotency import (
    MAX_KEY_LENGTH,
    Execute,
    IdempotencyService,
    InProgress,
    Mismatch,
    Replay,
    applies,
    fingerprint,
    is_stored,
    key_problem,
)
from mailsage.settings import ApiSettings
from mailsage.wiring import backends

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
# Headers that describe one execution rather than its outcome: never stored, never replayed.
_NOT_STORED = frozenset({"date", "retry-after", "set-cookie", "x-request-id", REPLAYED.lower()})
_default_serializer = partial(json.dumps, separators=(",", ":"), cls=Encoder)


def middleware(config: ApiSettings) -> Callable[[APIGatewayRestResolver, NextMiddleware], Response]:
    """The middleware, for the app built with `config`."""
    service: IdempotencyService | None = None

    def idempotency_service() -> IdempotencyService:
        nonlocal service  # built on first use: creating the app must not open the store
        if service is None:
            service = IdempotencyService(backends(config).store, config.idempotency_ttl_seconds)
        return service

    def idempotent(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
        event = app.current_event
        key = event.headers.get(HEADER)
        if key is None or not applies(event.http_method, event.path):
            return next_middleware(app)
        path = event.path
        problem = key_problem(key)
        if problem is not None:
            return _error(
                path, 400, "validation_error", problem, details={"field": HEADER, "max": MAX_KEY_LENGTH}
            )

        _, account_id = services_of()
        ids = idempotency_service()
        outcome = ids.begin(account_id, key, fingerprint(event.http_method, path, event.decoded_body))
        if isinstance(outcome, Replay):
            record = outcome.record
            assert record.status is not None  # a done record has its reply
            return Response(
                record.status, body=record.body or "", headers={**record.headers, REPLAYED: "true"}
            )
        if isinstance(outcome, InProgress):
            return _error(
                path,
                409,
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still in progress; retry after a moment",
                headers={REPLAYED: "false", "Retry-After": str(outcome.retry_after)},
            )
        if isinstance(outcome, Mismatch):
            return _error(
                path,
                422,
                "idempotency_mismatch",
                "this Idempotency-Key was already used with a different method, path or body",
            )
        assert isinstance(outcome, Execute)

        try:
            response = next_middleware(app)
        except Exception as exc:
            try:
                handled = _reply_for(app, exc)
            except BaseException:
                ids.release(account_id, key)
                raise
            if handled is None:
                ids.release(account_id, key)
                raise
            response = handled
        except BaseException:
            ids.release(account_id, key)
            raise

        body = _text(app, response)
        if body is None or not is_stored(response.status_code):
            ids.release(account_id, key)
            return response
        response.body = body  # the first reply and its replays are the same bytes
        try:
            ids.finish(account_id, key, response.status_code, body, _kept_headers(response))
        except Exception:
            # The request ran: answer it. The key stays in progress until it expires rather than
            # being released, which would let a retry run the request a second time.
            log.exception("could not store the reply of an idempotent request")
        return response

    return idempotent


def _reply_for(app: APIGatewayRestResolver, exc: Exception) -> Response | None:
    """The reply the app's exception handlers give to `exc` (None: none handles it)."""
    manager = app.exception_handler_manager
    if (
        isinstance(exc, DependencyResolutionError)
        and isinstance(exc.__cause__, Exception)
        and DependencyResolutionError not in manager.get_registered_handlers()
    ):
        exc = exc.__cause__  # as Powertools does: the dependency's own exception
    handler = manager.lookup_exception_handler(type(exc))
    if handler is None:
        return None
    try:
        reply = handler(exc)
    except ServiceError as service_error:
        return Response(
            service_error.status_code,
            content_types.APPLICATION_JSON,
            {"statusCode": service_error.status_code, "message": service_error.msg},
        )
    response = app._to_response(reply)
    return response if isinstance(response, Response) else None


def _text(app: APIGatewayRestResolver, response: Response) -> str | None:
    """The reply body as it goes out, or None if it cannot be stored as text."""
    body = response.body
    if body is None:
        return ""
    if isinstance(body, str):
        return body
    if isinstance(body, bytes) or not response.is_json():
        return None
    serializer: Callable[[Any], str] = getattr(app, "_serializer", _default_serializer)
    return serializer(body)


def _kept_headers(response: Response) -> dict[str, str]:
    return {
        name: value
        for name, value in response.headers.items()
        if isinstance(value, str) and name.lower() not in _NOT_STORED
    }


def _error(
    path: str,
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    details: Any = None,
) -> Response:
    if path.startswith("/v2/"):
        reply = Response(status, content_types.APPLICATION_JSON, {"message": message})
    else:
        reply = errors.envelope(status, code, message, details)
    reply.headers.update(headers or {})
    return reply

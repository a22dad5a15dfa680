"""`Idempotency-Key` on the create operations of both surfaces (v1 and the AhaSend-compatible v2).

Which requests honour a key: every POST (it creates something: a job, a template, a message, a
suppression), except the action routes that act on an existing resource (`.../control`,
`.../preview`). Other methods ignore the header. A request matches the remembered one on its
fingerprint: method, path and the SHA-256 of its body in canonical JSON (keys sorted, no
insignificant whitespace), so that re-serializing the same payload differently is still the same
request; a body that is not JSON is hashed as sent. What a key's record allows is
`mailsage.domain.idempotency`.

The middleware runs after the gate, so the request is authenticated and its account known;
Powertools has already validated the body, so a request refused before it runs (401, 413, 415, 400
on the body's shape) never touches a key. Here:

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

import hashlib
import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.depends import DependencyResolutionError, Depends
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.shared.json_encoder import Encoder

from mailsage.api import errors
from mailsage.api.dependencies import current_account, idempotency_service_dep
from mailsage.domain.idempotency import Execute, IdempotencyService, InProgress, Mismatch, Replay

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# Last path segments of the POST routes that do not create anything.
ACTION_SEGMENTS = frozenset({"control", "preview"})
# Headers that describe one execution rather than its outcome: never stored, never replayed.
_NOT_STORED = frozenset({"date", "retry-after", "set-cookie", "x-request-id", REPLAYED.lower()})
_default_serializer = partial(json.dumps, separators=(",", ":"), cls=Encoder)


def applies(method: str, path: str) -> bool:
    """Whether a request with this method and path honours an Idempotency-Key header."""
    return method.upper() == "POST" and path.rstrip("/").rsplit("/", 1)[-1] not in ACTION_SEGMENTS


def key_problem(key: str) -> str | None:
    """Why `key` is not a usable Idempotency-Key, or None."""
    if not key.strip():
        return "the Idempotency-Key header is empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"the Idempotency-Key header is {len(key)} characters; the limit is {MAX_KEY_LENGTH}"
    return None


def canonical_body(body: str | bytes | None) -> bytes:
    raw = body.encode() if isinstance(body, str) else (body or b"")
    if not raw.strip():
        return b""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint(method: str, path: str, body: str | bytes | None) -> str:
    digest = hashlib.sha256(canonical_body(body)).hexdigest()
    return f"{method.upper()} {path} sha256:{digest}"


def is_stored(status: int) -> bool:
    """Whether a reply with this status is remembered for replays. Server errors are not (the
    request may run again), nor is 429: being throttled is not the outcome of the request."""
    return status < 500 and status != 429


def idempotent(
    app: APIGatewayRestResolver,
    next_middleware: NextMiddleware,
    account_id: Annotated[str, Depends(current_account)],
    ids: Annotated[IdempotencyService, Depends(idempotency_service_dep)],
) -> Response:
    """The middleware: replies from the key's record, or runs the request and records its reply."""
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
    outcome = ids.begin(account_id, key, fingerprint(event.http_method, path, event.decoded_body))
    if isinstance(outcome, Execute):
        return _execute(app, next_middleware, ids, account_id, key)
    return _answer_without_running(path, outcome)


def _answer_without_running(path: str, outcome: Replay | InProgress | Mismatch) -> Response:
    if isinstance(outcome, Replay):
        record = outcome.record
        assert record.status is not None  # a done record has its reply
        return Response(record.status, body=record.body or "", headers={**record.headers, REPLAYED: "true"})
    if isinstance(outcome, InProgress):
        return _error(
            path,
            409,
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still in progress; retry after a moment",
            headers={REPLAYED: "false", "Retry-After": str(outcome.retry_after)},
        )
    return _error(
        path,
        422,
        "idempotency_mismatch",
        "this Idempotency-Key was already used with a different method, path or body",
    )


def _execute(
    app: APIGatewayRestResolver,
    next_middleware: NextMiddleware,
    ids: IdempotencyService,
    account_id: str,
    key: str,
) -> Response:
    """Run the request that owns the key; store its reply, or release the key."""
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

"""What the sync and async clients share: settings, the description of one request (`Call`), the
retry rules and the reading of a reply. No I/O here: `_sync.py` and `_async.py` send.

Retries. A request is tried again only when doing so cannot do the work twice:
- 429 (the server refused before running it) and 409 `idempotency_in_progress` (the first attempt
  with this key is still running; the retry gets its stored reply once it is done): always;
- 5xx and network failures: only when the request is safe to repeat, i.e. a GET, or a create
  carrying an `Idempotency-Key` (the server stores the first outcome and replays it);
- any other 4xx: never (`idempotency_mismatch`, 422, means the key was used with another body).
The wait is the reply's `Retry-After` (capped at `max_retry_after`) or an exponential backoff
with jitter, so that clients refused together do not come back together.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from mailsage_client._errors import APIConnectionError, APITimeoutError, MailSageError, from_reply
from mailsage_client._version import __version__

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8026"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# The server's idempotency rules: every POST creates something except these actions.
_ACTION_SEGMENTS = frozenset({"control", "preview"})


def settings(base_url: str | None, api_key: str | None) -> tuple[str, str]:
    """The base URL and API key, from the arguments or the environment."""
    url = (base_url or os.environ.get("MAILSAGE_URL") or DEFAULT_URL).rstrip("/")
    key = api_key or os.environ.get("MAILSAGE_API_KEY")
    if not key:
        raise MailSageError(
            "no API key: pass api_key= or set MAILSAGE_API_KEY (`mailsage serve` prints one when it starts)",
            code="missing_api_key",
        )
    return url, key


def headers(api_key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {api_key}",
        "Accept": "application/json",
        "User-Agent": f"mailsage-client/{__version__}",
    }


def segment(value: str) -> str:
    """A path segment: ids such as a v2 `<uuid@host>` message id are sent URL-encoded."""
    return quote(str(value), safe="")


def creates(method: str, path: str) -> bool:
    """Whether the server honours an Idempotency-Key on this request."""
    return method == "POST" and path.rstrip("/").rsplit("/", 1)[-1] not in _ACTION_SEGMENTS


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in value)
    return value


def rfc3339(value: datetime | str) -> str:
    """An RFC 3339 date-time; a naive datetime is taken as UTC."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")


def compact(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` without the ones left out (None)."""
    return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API operation: what to send and how to read its success reply."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None

    @property
    def safe_to_repeat(self) -> bool:
        return self.method == "GET" or self.idempotency_key is not None

    def request_headers(self) -> dict[str, str]:
        return {IDEMPOTENCY_HEADER: self.idempotency_key} if self.idempotency_key else {}


def call(
    method: str,
    path: str,
    parse: Callable[[Any], T],
    *,
    json: Any = None,
    params: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Call[T]:
    """A `Call`; a create gets an Idempotency-Key (the caller's or a new one), the same for every
    attempt."""
    key = None
    if creates(method, path):
        key = idempotency_key or str(uuid.uuid4())
    query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
    return Call(method, path, parse, json=json, params=query, idempotency_key=key)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    jitter: Callable[[], float] = random.random

    def delay(self, request: Call[Any], attempt: int, error: MailSageError) -> float | None:
        """Seconds to wait before trying `request` again after `error` on attempt `attempt`
        (0-based), or None: raise `error`."""
        if attempt >= self.max_retries or not retryable(request, error):
            return None
        if error.retry_after is not None:
            return max(0.0, min(error.retry_after, self.max_retry_after))
        backoff = min(self.max_delay, self.base_delay * 2.0**attempt)
        return backoff * (0.5 + self.jitter() / 2)


def retryable(request: Call[Any], error: MailSageError) -> bool:
    if error.status == 429 or error.code == "idempotency_in_progress":
        return True
    if error.status is None or error.status >= 500:
        return request.safe_to_repeat
    return False


def retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def outcome(request: Call[T], response: httpx.Response) -> T:
    """The parsed success reply of `request`, or the error it carries, raised."""
    if response.is_success:
        try:
            return request.parse(response.json() if response.content else None)
        except ValueError as exc:  # not JSON, or not the reply's shape (pydantic's error is one)
            raise MailSageError(
                f"the reply to {request.method} {request.path} could not be read: {exc}",
                code="invalid_reply",
                status=response.status_code,
            ) from exc
    try:
        payload = response.json()
    except ValueError:
        payload = None
    error = from_reply(
        response.status_code, payload, response.text, retry_after(response.headers.get("Retry-After"))
    )
    # Both surfaces mark "the first attempt with this key still runs" this way (v2 has no code).
    if response.status_code == 409 and response.headers.get("Idempotent-Replayed") == "false":
        error.code = "idempotency_in_progress"
    raise error


def no_reply(base_url: str, timeout: float, exc: httpx.TransportError) -> APIConnectionError:
    """The error for a request that got no reply."""
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"no reply from {base_url} within {timeout} s", code="timeout")
    return APIConnectionError(f"could not reach {base_url}: {exc}", code="connection_error")


def next_wait(job_id: str, state: str, waited: float, interval: float, timeout: float | None) -> float:
    """The seconds waited after one more poll interval, or `TimeoutError` when that would pass
    `timeout` (the time the requests themselves take is not counted)."""
    if timeout is not None and waited + interval > timeout:
        raise TimeoutError(f"job {job_id} is still {state} after {waited:g} s of waiting")
    return waited + interval

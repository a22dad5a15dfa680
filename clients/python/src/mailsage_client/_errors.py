"""Errors: every failure is a `MailSageError` carrying the API's error code.

v1 replies carry `{"error": {"code", "message", "details"}}`; the AhaSend-compatible v2 surface
carries only `{"message"}`, so there the code is derived from the status (`STATUS_CODES`).
"""

from __future__ import annotations

from typing import Any

# Codes for replies that carry none (v2 errors, a proxy's HTML page): the ones v1 uses for the status.
STATUS_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limit",
}


class MailSageError(Exception):
    """A request failed. `status` is the HTTP status (None: no reply), `code` the API's error code."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int | None = None,
        retry_after: float | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_after = retry_after
        self.details = details

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


class AuthenticationError(MailSageError):
    """401: the API key is missing, unknown or revoked."""


class PermissionDeniedError(MailSageError):
    """403: the key is valid but may not act on this resource (e.g. another account's v2 path)."""


class NotFoundError(MailSageError):
    """404: no such resource in this account."""


class ConflictError(MailSageError):
    """409: the resource is not in a state that allows this (e.g. resuming a finished job)."""


class ValidationError(MailSageError):
    """400, 413, 415 or 422: the request itself is wrong; sending it again will not help."""


class RateLimitError(MailSageError):
    """429: over the account's request limit; `retry_after` says when to try again."""


class ServerError(MailSageError):
    """5xx: the server failed; the request may or may not have run."""


class APIConnectionError(MailSageError):
    """No reply: the server could not be reached, or the connection broke."""


class APITimeoutError(APIConnectionError):
    """No reply within the client's timeout."""


_BY_STATUS: dict[int, type[MailSageError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    400: ValidationError,
    413: ValidationError,
    415: ValidationError,
    422: ValidationError,
    429: RateLimitError,
}


def error_class(status: int) -> type[MailSageError]:
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, MailSageError)


def from_reply(status: int, payload: Any, text: str, retry_after: float | None) -> MailSageError:
    """The exception for an error reply: `payload` is its parsed JSON (None if it was not JSON)."""
    code = STATUS_CODES.get(status, "server_error" if status >= 500 else f"http_{status}")
    message, details = "", None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):  # v1
            code = str(error.get("code") or code)
            message = str(error.get("message") or "")
            details = error.get("details")
        elif isinstance(payload.get("message"), str):  # v2
            message = payload["message"]
    if not message:
        message = text.strip()[:500] or f"HTTP {status}"
    return error_class(status)(message, code=code, status=status, retry_after=retry_after, details=details)

"""Domain errors. Each carries the public error code; the API surfaces map classes to HTTP status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailsage.domain.rate_limits import Quota


class MailSageError(Exception):
    code = "internal_error"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationFailed(MailSageError):
    code = "validation_error"


class InvalidRecipient(MailSageError):
    code = "invalid_recipient"


class TemplateError(MailSageError):
    code = "template_error"


class Unauthorized(MailSageError):
    code = "unauthorized"


class Forbidden(MailSageError):
    """The credentials are valid but may not do this (another account, a sender domain not allowed)."""

    code = "forbidden"


class NotFound(MailSageError):
    code = "not_found"


class Conflict(MailSageError):
    """An impossible state transition, or a conditional write that lost."""

    code = "conflict"


class PayloadTooLarge(MailSageError):
    code = "payload_too_large"


class UnsupportedMediaType(MailSageError):
    code = "unsupported_media_type"


class ServiceUnavailable(MailSageError):
    """The store cannot answer now (a database locked past its busy timeout, a full disk): nothing
    was accepted; the same request may be sent again after `retry_after` seconds."""

    code = "service_unavailable"

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message, {"retry_after": retry_after})
        self.retry_after = retry_after


class RateLimited(MailSageError):
    """The account made more requests than its limit allows: nothing was done; the same request
    may be sent again after `retry_after` seconds. `quota` is what the limiter reported."""

    code = "rate_limit"

    def __init__(self, message: str, retry_after: int, quota: Quota | None = None) -> None:
        super().__init__(message, {"retry_after": retry_after})
        self.retry_after = retry_after
        self.quota = quota


class SendError(MailSageError):
    code = "smtp_error"


class TransientSendError(SendError):
    """Worth retrying later: 4xx replies, throttling, lost connections. `throttled`: the provider
    asked us to slow down (a sending rate exceeded); that is not an attempt of the message."""

    def __init__(
        self, message: str, details: Any = None, connection_lost: bool = False, throttled: bool = False
    ) -> None:
        super().__init__(message, details)
        self.connection_lost = connection_lost or throttled  # a rate holds for every message
        self.throttled = throttled


class ProviderPaused(TransientSendError):
    """The provider will send nothing for a while: its daily quota is used up ("daily_quota") or it
    paused sending for the account or configuration set ("sending_paused"). Not an attempt of the
    message: every job sending through it parks until a later probe gets through."""

    def __init__(self, message: str, reason: str, details: Any = None) -> None:
        super().__init__(message, details, throttled=True)
        self.reason = reason


class PermanentSendError(SendError):
    """Retrying will not help: 5xx replies, rejected recipients."""

    def __init__(self, message: str, details: Any = None, hard_bounce: bool = False) -> None:
        super().__init__(message, details)
        # The recipient's address does not exist (a 5xx refusal of the recipient): a hard bounce,
        # which suppresses the address, rather than a failure of this one message.
        self.hard_bounce = hard_bounce

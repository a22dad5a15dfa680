"""The transport port on Amazon SES v2: each message goes out as raw MIME through SendEmail.

There is no connection to hold, so a session is just a handle on the transport's SES client, which
is created on first use and shared by every session (boto3 clients are thread-safe).

Message tags: SES accepts only ASCII letters, digits, "_" and "-" in tag names and values, at most
256 characters (SES v2 API reference, MessageTag). Other characters become "_" and longer values are
cut, so MailSage's ids (letters, digits, "_") pass unchanged; a tag whose value is empty is left out.
Tags only reach event destinations through a configuration set.

Errors: SES's answers are classified like SMTP replies.
- Transient, and the rest of the chunk waits too (connection_lost=True), because the condition holds
  for every message: throttling (TooManyRequestsException, LimitExceededException, Throttling*),
  credential or permission errors and NotFoundException (a missing configuration set: fixable
  configuration, like an SMTP login failure), and connection errors (EndpointConnectionError,
  ConnectionClosedError, timeouts).
- Transient for this message only: InternalFailure, ServiceUnavailable and any other 5xx.
- Permanent: MessageRejected, MailFromDomainNotVerifiedException, AccountSuspendedException,
  BadRequestException, and any other 4xx.
A sending rate exceeded (TooManyRequestsException, Throttling*, or "Maximum sending rate exceeded"
whatever the code) is a throttle: the message goes back without an attempt counted.
Checked before that, because SES words them as throttles too: "Daily message quota exceeded"
(whatever the code: v1 answers Throttling, v2 LimitExceededException or TooManyRequestsException)
and SendingPausedException stop the provider (`ProviderPaused`): every job sending through it parks.
botocore does not retry a send: a throttle retried inside the call would wait out of the pacer's
sight, and a send retried after a timeout could reach SES twice. The sender retries instead.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from mailsage.errors import PermanentSendError, ProviderPaused, TransientSendError

MAX_TAG_LENGTH = 256

_TAG_INVALID = re.compile(r"[^A-Za-z0-9_-]")
_ACCOUNT_WIDE = frozenset({"TooManyRequestsException", "LimitExceededException", "NotFoundException"})
_CREDENTIALS = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
_RATE_EXCEEDED = "maximum sending rate exceeded"
_DAILY_QUOTA_EXCEEDED = "daily message quota exceeded"
_SENDING_PAUSED = "SendingPausedException"
_SERVER_SIDE = frozenset({"InternalFailure", "InternalServerError", "ServiceUnavailable"})
_PERMANENT = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "AccountSuspendedException",
        "BadRequestException",
    }
)


def sanitize_tag(text: str) -> str:
    """A tag name or value SES accepts: other characters become "_", cut at 256 characters."""
    return _TAG_INVALID.sub("_", text)[:MAX_TAG_LENGTH]


def message_tags(tags: dict[str, str] | None) -> list[dict[str, str]]:
    out = []
    for name, value in (tags or {}).items():
        clean_name, clean_value = sanitize_tag(name), sanitize_tag(str(value))
        if clean_name and clean_value:
            out.append({"Name": clean_name, "Value": clean_value})
    return out


def is_throttle(code: str, text: str) -> bool:
    """SES asked for a slower rate: TooManyRequestsException, Throttling*, or a send refused with
    "Maximum sending rate exceeded" (SES's wording whatever the code)."""
    return code == "TooManyRequestsException" or code.startswith("Throttl") or _RATE_EXCEEDED in text.lower()


def paused_reason(code: str, text: str) -> str | None:
    """Why SES sends nothing for a while ("daily_quota", "sending_paused"); None when it still sends."""
    if _DAILY_QUOTA_EXCEEDED in text.lower():
        return "daily_quota"
    if code == _SENDING_PAUSED:
        return "sending_paused"
    return None


def classify_client_error(exc: Exception) -> TransientSendError | PermanentSendError:
    """The send error for a botocore ClientError from SendEmail; its message names the AWS code."""
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    text = str(error.get("Message") or "")
    message = f"SES {code}: {text or exc}"
    details = {"aws_error_code": code, "http_status": status}
    reason = paused_reason(code, text)
    if reason is not None:
        return ProviderPaused(message, reason, details)
    if is_throttle(code, text):
        return TransientSendError(message, details, throttled=True)
    if code in _PERMANENT:
        return PermanentSendError(message, details)
    if code in _ACCOUNT_WIDE or code.startswith("Throttl") or code in _CREDENTIALS:
        return TransientSendError(message, details, connection_lost=True)
    if code in _SERVER_SIDE or status >= 500 or status == 0:
        return TransientSendError(message, details)
    return PermanentSendError(message, details)


class SesSession:
    def __init__(self, transport: SesTransport) -> None:
        self.transport = transport

    def send(
        self, sender: str, recipient: str, data: bytes, tags: dict[str, str] | None = None
    ) -> str | None:
        from botocore.exceptions import (
            ClientError,
            CredentialRetrievalError,
            HTTPClientError,
            NoCredentialsError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError

        request: dict[str, Any] = {
            "FromEmailAddress": sender,
            "Destination": {"ToAddresses": [recipient]},
            "Content": {"Raw": {"Data": data}},
        }
        if self.transport.configuration_set:
            request["ConfigurationSetName"] = self.transport.configuration_set
        email_tags = message_tags(tags)
        if email_tags:
            request["EmailTags"] = email_tags
        try:
            response = self.transport.client().send_email(**request)
        except ClientError as exc:
            raise classify_client_error(exc) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            # EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError, ReadTimeoutError
            raise TransientSendError(f"SES unreachable: {exc}", connection_lost=True) from exc
        except (NoCredentialsError, CredentialRetrievalError) as exc:
            raise TransientSendError(f"no AWS credentials for SES: {exc}", connection_lost=True) from exc
        message_id = response.get("MessageId")
        return str(message_id) if message_id else None

    def close(self) -> None:
        """Nothing to close: the client stays with the transport."""


class SesTransport:
    def __init__(self, configuration_set: str | None = None, client: Any | None = None) -> None:
        self.configuration_set = configuration_set
        self._client = client
        self._client_lock = threading.Lock()

    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    self._client = boto3.client(
                        "sesv2", config=Config(retries={"mode": "standard", "max_attempts": 1})
                    )
        return self._client

    def open(self) -> SesSession:
        return SesSession(self)

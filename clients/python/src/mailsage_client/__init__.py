"""A typed client for the MailSage email-sending API.

from mailsage_client import MailSage

with MailSage() as client:  # $MAILSAGE_URL (default http://127.0.0.1:8026), $MAILSAGE_API_KEY
    reply = client.emails.send("ada@example.com", subject="Hi", text="Hello")
    job = client.jobs.get(reply.job_id)
"""

from mailsage_client._async import AsyncMailSage
from mailsage_client._core import DEFAULT_URL, RetryPolicy
from mailsage_client._errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    MailSageError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from mailsage_client._pagination import AsyncPaginator, Page, Paginator
from mailsage_client._sync import MailSage
from mailsage_client._version import __version__
from mailsage_client.models import (
    BatchReply,
    Campaign,
    Job,
    Preview,
    Recipient,
    SendReply,
    Template,
    Webhook,
    WebhookCreated,
)

__all__ = [
    "DEFAULT_URL",
    "APIConnectionError",
    "APITimeoutError",
    "AsyncMailSage",
    "AsyncPaginator",
    "AuthenticationError",
    "BatchReply",
    "Campaign",
    "ConflictError",
    "Job",
    "MailSage",
    "MailSageError",
    "NotFoundError",
    "Page",
    "Paginator",
    "PermissionDeniedError",
    "Preview",
    "RateLimitError",
    "Recipient",
    "RetryPolicy",
    "SendReply",
    "ServerError",
    "Template",
    "ValidationError",
    "Webhook",
    "WebhookCreated",
    "__version__",
]

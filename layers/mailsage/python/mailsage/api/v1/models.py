"""MailSage v1 request and response models. These are the wire format: the OpenAPI schema and the
request validation both come from them. Unknown fields are rejected so typos do not pass silently."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field

from mailsage.api.model import Model
from mailsage.domain.submission import JobRequest, RecipientInput


def _single_line(value: str | None) -> str | None:
    if value is not None and ("\r" in value or "\n" in value):
        raise ValueError("must not contain a line break (CR or LF)")
    return value


SingleLine = Annotated[str, AfterValidator(_single_line)]
Subject = Annotated[str, Field(min_length=1, max_length=998), AfterValidator(_single_line)]
Body = Annotated[str, Field(max_length=1_000_000)]
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


class Strict(Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RecipientIn(Strict):
    # Address syntax and CR/LF are checked per recipient by the domain, so a batch can reject one
    # recipient and accept the rest. Here only the shape is checked.
    email: str = Field(max_length=320)
    name: str | None = Field(None, max_length=256)
    variables: dict[str, Any] = Field(default_factory=dict)


class TrackingIn(Strict):
    open: bool = Field(False, description="Count opens with a 1x1 pixel (HTML mail only).")
    click: bool = Field(False, description="Count clicks: http(s) links of the HTML go through the API.")


class _ContentIn(Strict):
    subject: Subject | None = None
    body: Body | None = Field(None, description="The text/plain part.")
    html: Body | None = Field(None, description="The text/html part.")
    template_id: Id | None = None
    from_: Annotated[SingleLine, Field(max_length=320)] | None = Field(None, alias="from")
    reply_to: Annotated[SingleLine, Field(max_length=320)] | None = None
    campaign_id: Id | None = None
    provider: Id | None = Field(
        None, description='Send through this provider ("ses" or an SMTP relay name) instead of the default.'
    )
    tracking: TrackingIn | None = Field(None, description="Open and click tracking; off unless set.")
    list_unsubscribe: bool | None = Field(
        None,
        description="Add List-Unsubscribe with a one-click URL (RFC 8058). Default: on for batches"
        " and campaigns, off for single sends.",
    )


class SendRequest(_ContentIn):
    recipient: RecipientIn


class BatchRequest(_ContentIn):
    recipients: list[RecipientIn] = Field(min_length=1)
    validation: Literal["lenient", "strict"] = Field(
        "lenient", description="strict: reject the whole batch (400) if any recipient fails."
    )


class ControlRequest(Strict):
    action: Literal["pause", "resume", "stop"]


class TemplateIn(Strict):
    name: str = Field(min_length=1, max_length=256)
    subject: Subject
    html: Body | None = None
    text: Body | None = None


class PreviewRequest(Strict):
    variables: dict[str, Any] = Field(default_factory=dict)


def job_request(body: SendRequest | BatchRequest) -> JobRequest:
    """API request -> domain request (shared by the HTTP routes and the ingest queue)."""
    if isinstance(body, SendRequest):
        kind, recipients = "send", [body.recipient]
    else:
        kind, recipients = "batch", body.recipients
    return JobRequest(
        kind=kind,
        recipients=[RecipientInput(r.email, r.name, r.variables) for r in recipients],
        subject=body.subject,
        text=body.body,
        html=body.html,
        template_id=body.template_id,
        from_addr=body.from_,
        reply_to=body.reply_to,
        campaign_id=body.campaign_id,
        provider=body.provider,
        tracking=body.tracking.model_dump() if body.tracking else None,
        unsubscribe=body.list_unsubscribe,
        strict=isinstance(body, BatchRequest) and body.validation == "strict",
    )


# -- replies -------------------------------------------------------------------------------------


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class SendReply(Model):
    job_id: str
    message_id: str
    status: str


class AcceptedMessage(Model):
    index: int
    email: str
    message_id: str
    status: str


class RejectedRecipient(Model):
    index: int
    email: str
    code: str
    message: str


class BatchReply(Model):
    job_id: str
    status: str
    campaign_id: str | None
    accepted: int
    rejected: int
    messages: list[AcceptedMessage]
    errors: list[RejectedRecipient]


class Progress(Model):
    processed: int
    total: int
    percent: float


class JobReply(Model):
    job_id: str
    kind: str
    state: str
    campaign_id: str | None
    total: int
    counts: dict[str, int]
    progress: Progress
    dead_letters: list[dict[str, Any]]
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None
    paused_reason: str | None = Field(
        description="Why the provider parked the job (`daily_quota`: its 24-hour sending quota is used"
        " up; `sending_paused`: it paused sending). The job resumes by itself when the provider sends"
        " again. null unless parked (a caller's pause has no reason)."
    )
    throttled: int = Field(description="How many times the provider asked this job's sends to slow down.")
    send_rate: float | None = Field(
        description="Messages per second this job's sends are paced at now; null when not paced."
    )


class TemplateReply(Model):
    template_id: str
    name: str
    subject: str
    html: str | None
    text: str | None
    created_at: str
    updated_at: str


class TemplateList(Model):
    data: list[TemplateReply]
    next_cursor: str | None


class PreviewReply(Model):
    subject: str
    html: str | None
    text: str | None


class ErrorBody(Model):
    code: str
    message: str
    details: Any | None = None


class ErrorEnvelope(Model):
    error: ErrorBody


_ERROR_TEXT = {
    400: "validation_error, invalid_recipient or template_error",
    401: "unauthorized: missing or invalid API key",
    404: "not_found (also for another account's ids)",
    409: "conflict: impossible job transition",
    413: "payload_too_large",
    415: "unsupported_media_type: the body must be application/json",
    429: "rate_limit: over the account's request limit (Retry-After, RateLimit)",
}


def responses(status: int, model: type[Model] | None, *errors: int) -> dict[int, Any]:
    """The OpenAPI `responses` of a route: its success reply and the error envelopes it can give."""
    # No model: no body (204). An empty content map, or Powertools documents a JSON `null` body.
    success: dict[str, Any] = {"description": "Success", "content": {}}
    if model is not None:
        success["content"] = {"application/json": {"model": model}}
    out: dict[int, Any] = {status: success}
    for code in (401, 413, 415, 429, *errors):
        out[code] = {
            "description": _ERROR_TEXT[code],
            "content": {"application/json": {"model": ErrorEnvelope}},
        }
    return out

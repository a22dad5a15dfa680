"""Replies of the v1 API (`/api/v1`) as pydantic models, and the recipient of a batch.

Models accept fields they do not know, so a newer server does not break an older client.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Recipient(ApiModel):
    """One recipient of a batch; `variables` fill the template or content for this recipient."""

    email: str
    name: str | None = None
    variables: dict[str, Any] = Field(default_factory=dict)


class SendReply(ApiModel):
    job_id: str
    message_id: str
    status: str


class AcceptedMessage(ApiModel):
    index: int
    email: str
    message_id: str
    status: str


class RejectedRecipient(ApiModel):
    index: int
    email: str
    code: str
    message: str


class BatchReply(ApiModel):
    job_id: str
    status: str
    campaign_id: str | None = None
    accepted: int
    rejected: int
    messages: list[AcceptedMessage]
    errors: list[RejectedRecipient]


class Progress(ApiModel):
    processed: int
    total: int
    percent: float


# Job states: queued, scheduled, running, paused, completed, stopped, expired (a plain string, so
# that a state added by a newer server still parses). The ones a job never leaves:
FINAL_STATES: frozenset[str] = frozenset({"completed", "stopped", "expired"})


class Job(ApiModel):
    """A job (one send or one batch): its state and per-status counts. Also the reply of
    pause/resume/stop, which answer with the job as the action left it."""

    job_id: str
    kind: str
    state: str
    campaign_id: str | None = None
    total: int
    counts: dict[str, int]
    progress: Progress
    dead_letters: list[dict[str, Any]] = Field(default_factory=list)
    created_at: str
    updated_at: str
    started_at: str | None = None
    finished_at: str | None = None
    paused_reason: str | None = None
    throttled: int = 0
    send_rate: float | None = None

    @property
    def done(self) -> bool:
        """Whether the job has reached a state it never leaves."""
        return self.state in FINAL_STATES


class Template(ApiModel):
    template_id: str
    name: str
    subject: str
    html: str | None = None
    text: str | None = None
    created_at: str
    updated_at: str


class Preview(ApiModel):
    subject: str
    html: str | None = None
    text: str | None = None


class Webhook(ApiModel):
    id: str
    name: str
    url: str
    enabled: bool
    events: list[str]
    scope: Literal["global", "scoped"]
    domains: list[str]
    created_at: str
    updated_at: str
    success_count: int
    error_count: int
    errors_since_last_success: int
    last_request_at: str | None = None
    disabled_reason: str | None = None
    signing: str


class WebhookCreated(Webhook):
    """A new webhook: the only reply that shows its signing `secret`."""

    secret: str


class DeliveryAttempt(ApiModel):
    time: str
    status_code: int | None = None
    error: str | None = None
    duration_ms: float | None = None
    replay: bool = False


class Delivery(ApiModel):
    id: str
    event_type: str
    status: str
    created_at: str
    updated_at: str
    attempts: list[DeliveryAttempt]
    next_attempt_at: str | None = None
    payload: Any = None


class ReplayReply(ApiModel):
    delivery_id: str
    webhook_id: str
    status: str | None = None


class TestEventReply(ApiModel):
    __test__ = False  # not a pytest class

    delivery_id: str
    webhook_id: str
    event_type: str
    payload: Any = None
    status: str | None = None


class CampaignRates(ApiModel):
    delivery_rate: float
    bounce_rate: float
    complaint_rate: float
    open_rate: float
    click_rate: float
    unsubscribe_rate: float


class Campaign(ApiModel):
    campaign_id: str
    jobs: int
    recipients: int
    queued: int
    sent: int
    delivered: int
    bounced: int
    complained: int
    failed: int
    suppressed: int
    opened: int
    clicked: int
    unsubscribed: int
    rates: CampaignRates

"""`/api/v1/emails`: send, batch, job status and control. Each route makes one domain call."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from mailsage.api.dependencies import AccountId, Services
from mailsage.api.v1.models import (
    AcceptedMessage,
    BatchReply,
    BatchRequest,
    ControlRequest,
    JobReply,
    Progress,
    RejectedRecipient,
    SendReply,
    SendRequest,
    iso,
    job_request,
    responses,
)
from mailsage.domain.models import MESSAGE_UNSENT, Job, MessageStatus

router = APIGatewayRouter()


def job_reply(job: Job) -> JobReply:
    counts = {s.value: 0 for s in MessageStatus} | job.counts
    processed = job.total - sum(counts[s.value] for s in MESSAGE_UNSENT)
    return JobReply(
        job_id=job.id,
        kind=job.kind,
        state=job.state.value,
        campaign_id=job.campaign_id,
        total=job.total,
        counts=counts,
        progress=Progress(
            processed=processed,
            total=job.total,
            percent=round(100.0 * processed / job.total, 2) if job.total else 100.0,
        ),
        dead_letters=job.dead_letters,
        created_at=iso(job.created_at) or "",
        updated_at=iso(job.updated_at) or "",
        started_at=iso(job.started_at),
        finished_at=iso(job.finished_at),
        paused_reason=job.paused_reason,
        throttled=job.throttled,
        send_rate=job.send_rate,
    )


@router.post("/send", responses=responses(202, SendReply, 400), summary="Send one email")
def send(body: SendRequest, services: Services, account_id: AccountId) -> Response[SendReply]:
    accepted = services.submission.submit(account_id, job_request(body))
    message = accepted.messages[0]
    reply = SendReply(job_id=accepted.job.id, message_id=message.id, status=message.status.value)
    return Response(202, content_types.APPLICATION_JSON, reply)


@router.post(
    "/batch", responses=responses(202, BatchReply, 400), summary="Send a batch (one job, many recipients)"
)
def batch(body: BatchRequest, services: Services, account_id: AccountId) -> Response[BatchReply]:
    accepted = services.submission.submit(account_id, job_request(body))
    reply = BatchReply(
        job_id=accepted.job.id,
        status=accepted.job.state.value,
        campaign_id=accepted.job.campaign_id,
        accepted=len(accepted.messages),
        rejected=len(accepted.rejected),
        messages=[
            AcceptedMessage(index=m.seq, email=m.email, message_id=m.id, status=m.status.value)
            for m in accepted.messages
        ],
        errors=[RejectedRecipient(**r.as_dict()) for r in accepted.rejected],
    )
    return Response(202, content_types.APPLICATION_JSON, reply)


@router.get("/jobs/<job_id>", responses=responses(200, JobReply, 404), summary="A job's state and progress")
def get_job(job_id: str, services: Services, account_id: AccountId) -> JobReply:
    return job_reply(services.jobs.status(account_id, job_id))


@router.post(
    "/jobs/<job_id>/control",
    responses=responses(200, JobReply, 400, 404, 409),
    summary="Pause, resume or stop a job",
)
def control_job(job_id: str, body: ControlRequest, services: Services, account_id: AccountId) -> JobReply:
    return job_reply(services.jobs.control(account_id, job_id, body.action))

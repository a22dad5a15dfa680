"""SQS send queue -> deliver chunks. Reports partial batch failures so one failing chunk is
retried without replaying the others."""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Json

# Loaded at cold start, not on first use (wiring imports lazily): every invocation needs it.
import mailsage.domain.delivery  # noqa: F401
from mailsage.adapters.aws.metrics import PowertoolsMeter
from mailsage.adapters.lanes import receipt_for
from mailsage.domain.models import ChunkRef
from mailsage.domain.pacing import Lane
from mailsage.settings import SenderSettings
from mailsage.wiring import delivery_service

settings = SenderSettings()  # validated at cold start
logger = Logger(service="mailsage-sender")
# AWS calls become subsegments (botocore only: patching every module X-Ray knows costs cold start).
# Outside Lambda (tests, `mailsage serve`) Powertools turns tracing off: nothing is patched or sent.
tracer = Tracer(service="mailsage-sender", patch_modules=["botocore"])
# What the services counted, on AWS (locally nothing is counted, so nothing is written).
meter = PowertoolsMeter()


class ChunkBody(BaseModel):
    account_id: str
    job_id: str
    chunk: int
    lane: Lane = Lane.BULK  # which queue it was put in (adapters/lanes.py)


class ChunkRecord(SqsRecordModel):
    body: Json[ChunkBody]  # type: ignore[assignment]


# Every failed chunk is reported as an item failure, even when all failed: the sender has already
# set each one's retry delay, and raising would turn an expected retry into a crashed invocation.
processor = BatchProcessor(event_type=EventType.SQS, model=ChunkRecord, raise_on_entire_batch_failure=False)


def record_handler(record: ChunkRecord, lambda_context: LambdaContext) -> None:
    body = record.body
    delivery_service(settings).deliver(
        ChunkRef(body.account_id, body.job_id, body.chunk),
        # Retries go back to the lane's own queue.
        receipt=receipt_for(body.lane, record.receiptHandle),
        receive_count=int(record.attributes.ApproximateReceiveCount),
        # No message is started that the invocation may not have time to finish.
        remaining_ms=lambda_context.get_remaining_time_in_millis,
    )


@logger.inject_lambda_context
@meter.log_metrics
# The reply stays out of the trace: it holds customer data (content, API keys) and may pass 64 KB.
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

"""Webhook queue -> signed POSTs to customer endpoints. A failed attempt is reported as a batch
item failure after the dispatcher set the record's retry delay, so only that record comes back."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Json

# Loaded at cold start, not on first use (wiring imports lazily): every invocation needs it.
import mailsage.adapters.webhook_http  # noqa: F401
import mailsage.domain.webhook_delivery  # noqa: F401
from mailsage.adapters.aws.metrics import PowertoolsMeter
from mailsage.settings import WebhooksSettings
from mailsage.wiring import webhook_dispatcher

settings = WebhooksSettings()  # validated at cold start
logger = Logger(service="mailsage-webhooks")
# AWS calls become subsegments (botocore only: patching every module X-Ray knows costs cold start).
# Outside Lambda (tests, `mailsage serve`) Powertools turns tracing off: nothing is patched or sent.
tracer = Tracer(service="mailsage-webhooks", patch_modules=["botocore"])
# What the services counted, on AWS (locally nothing is counted, so nothing is written).
meter = PowertoolsMeter()


class DeliveryBody(BaseModel):
    """What EventPublisher (or a replay) put on the webhook queue."""

    delivery_id: str
    account_id: str
    webhook_id: str
    event_type: str
    payload: str  # the exact JSON body that is signed and posted
    created_at: float
    replay: bool = False
    test: bool = False  # a test event sent on request: one attempt, not counted


class DeliveryRecord(SqsRecordModel):
    body: Json[DeliveryBody]  # type: ignore[assignment]


# A failed delivery is an item failure even when every record failed: the dispatcher has already
# set each one's retry delay, and raising would turn expected retries into a crashed invocation.
processor = BatchProcessor(
    event_type=EventType.SQS, model=DeliveryRecord, raise_on_entire_batch_failure=False
)


def record_handler(record: DeliveryRecord) -> None:
    body: dict[str, Any] = record.body.model_dump()
    status = webhook_dispatcher(settings).dispatch(
        body,
        receipt=record.receiptHandle,
        receive_count=int(record.attributes.ApproximateReceiveCount),
    )
    logger.info(
        "webhook delivery",
        delivery_id=body["delivery_id"],
        webhook_id=body["webhook_id"],
        event_type=body["event_type"],
        status=status,
        replay=body["replay"],
    )


@logger.inject_lambda_context
@meter.log_metrics
# The reply stays out of the trace: it holds customer data (content, API keys) and may pass 64 KB.
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

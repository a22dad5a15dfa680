"""SQS ingest queue -> jobs. Each record holds the JSON of a v1 send or batch request plus its
`account_id`. Invalid records go to the ingest dead-letter queue with the reason; records that
fail for a passing reason are reported as batch item failures and retried."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

# Loaded at cold start, not on first use (wiring imports lazily): every invocation needs it.
import mailsage.domain.ingest  # noqa: F401
from mailsage.adapters.aws.metrics import PowertoolsMeter
from mailsage.settings import IngestSettings
from mailsage.wiring import ingest_service

if TYPE_CHECKING:
    from mailsage.domain.submission import JobRequest

settings = IngestSettings()  # validated at cold start
logger = Logger(service="mailsage-ingest")
# AWS calls become subsegments (botocore only: patching every module X-Ray knows costs cold start).
# Outside Lambda (tests, `mailsage serve`) Powertools turns tracing off: nothing is patched or sent.
tracer = Tracer(service="mailsage-ingest", patch_modules=["botocore"])
# What the services counted, on AWS (locally nothing is counted, so nothing is written).
meter = PowertoolsMeter()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def parse_record(body: str) -> tuple[str, JobRequest]:
    """(account_id, request) of a record's body, validated by the v1 API's own models; ValueError
    (pydantic's ValidationError is one) says why it is not a request."""
    import json

    # Imported on the first record, as before: the models are the API's wire format.
    from mailsage.api.v1.models import BatchRequest, SendRequest, job_request

    payload: Any = json.loads(body)  # JSONDecodeError is a ValueError
    # A body that was not JSON arrives wrapped as {"raw_body": ...} (the queue adapters' convention).
    if not isinstance(payload, dict) or set(payload) == {"raw_body"}:
        raise ValueError("the record must be a JSON object")
    account_id = payload.pop("account_id", None)
    if not isinstance(account_id, str) or not account_id:
        raise ValueError("account_id is required")
    model = BatchRequest if "recipients" in payload else SendRequest
    return account_id, job_request(model.model_validate(payload))


def record_handler(record: SQSRecord) -> None:
    service = ingest_service(settings)
    try:
        account_id, request = parse_record(record.body)
    except ValueError as exc:
        outcome = service.reject(record.message_id, record.body, f"invalid record: {exc}")
    else:
        outcome = service.accept(record.message_id, record.body, account_id, request)
    logger.info(
        "ingest record", record_id=record.message_id, job_id=outcome.job_id, rejected=outcome.rejected
    )


@logger.inject_lambda_context
@meter.log_metrics
# The reply stays out of the trace: it holds customer data (content, API keys) and may pass 64 KB.
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

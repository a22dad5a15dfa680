"""SQS ingest queue -> jobs. Each record holds the JSON of a v1 send or batch request plus its
`account_id`. Invalid records go to the ingest dead-letter queue with the reason; records that
fail for a passing reason are reported as batch item failures and retried."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

# Loaded at cold start, not on first use (wiring imports lazily): every invocation needs it.
import mailsage.domain.ingest  # noqa: F401
from mailsage.settings import IngestSettings
from mailsage.wiring import ingest_service

settings = IngestSettings()  # validated at cold start
logger = Logger(service="mailsage-ingest")
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    outcome = ingest_service(settings).accept(record.message_id, record.body)
    logger.info(
        "ingest record", record_id=record.message_id, job_id=outcome.job_id, rejected=outcome.rejected
    )


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

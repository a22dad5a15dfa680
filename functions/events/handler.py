"""SES event notifications (configuration set -> SNS -> SQS, raw delivery) -> message statuses."""

import json

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

# Loaded at cold start, not on first use (wiring imports lazily): every invocation needs it.
import mailsage.domain.feedback  # noqa: F401
from mailsage.settings import EventsSettings
from mailsage.wiring import feedback_service

settings = EventsSettings()  # validated at cold start
logger = Logger(service="mailsage-events")
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    body = json.loads(record.body)
    if body.get("Type") == "Notification" and "Message" in body:  # SNS envelope (raw delivery off)
        body = json.loads(body["Message"])
    outcome = feedback_service(settings).apply(body)
    # Debug: the outcome is stored with the message; one line per notification is noise (and cost).
    logger.debug(
        "ses event",
        event_type=outcome.event_type,
        message_id=outcome.message_id,
        status=outcome.status,
        reason=outcome.reason,
    )


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

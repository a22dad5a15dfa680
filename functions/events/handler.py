"""Delivery feedback -> message statuses. The events queue carries SES event notifications
(configuration set -> SNS -> SQS, raw delivery or not; or -> EventBridge -> SQS, the stack's
opt-in) and, from the embedded runtime's sink, delivery reports already in MailSage's terms; both
become a DeliveryReport for FeedbackService."""

import json
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

# Loaded at cold start, not on first use (wiring imports lazily): every invocation needs it.
import mailsage.domain.feedback  # noqa: F401
from mailsage.adapters.aws import ses_events
from mailsage.adapters.aws.metrics import PowertoolsMeter
from mailsage.domain.delivery_reports import DeliveryReport, is_report
from mailsage.settings import EventsSettings
from mailsage.wiring import feedback_service

settings = EventsSettings()  # validated at cold start
logger = Logger(service="mailsage-events")
# AWS calls become subsegments (botocore only: patching every module X-Ray knows costs cold start).
# Outside Lambda (tests, `mailsage serve`) Powertools turns tracing off: nothing is patched or sent.
tracer = Tracer(service="mailsage-events", patch_modules=["botocore"])
# What the services counted, on AWS (locally nothing is counted, so nothing is written).
meter = PowertoolsMeter()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def report_of(body: dict[str, Any]) -> DeliveryReport | str:
    """The report a queued body carries, or the SES event type MailSage does not know."""
    if is_report(body):
        return DeliveryReport.from_dict(body)
    notification = ses_events.unwrap(body)
    return ses_events.to_report(notification) or ses_events.event_type(notification)


def record_handler(record: SQSRecord) -> None:
    report = report_of(json.loads(record.body))
    if isinstance(report, str):
        logger.debug("ses event", event_type=report, reason="unknown event type")
        return
    outcome = feedback_service(settings).apply(report)
    # Debug: the outcome is stored with the message; one line per notification is noise (and cost).
    logger.debug(
        "ses event",
        event_type=outcome.event_type,
        message_id=outcome.message_id,
        status=outcome.status,
        reason=outcome.reason,
    )


@logger.inject_lambda_context
@meter.log_metrics
# The reply stays out of the trace: it holds customer data (content, API keys) and may pass 64 KB.
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

"""API Gateway (REST) -> MailSage v1. Routes live in mailsage.api; this file is the entry point."""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from mailsage.adapters.aws.metrics import PowertoolsMeter
from mailsage.api.app import create_app
from mailsage.settings import ApiSettings

settings = ApiSettings()  # validated at cold start: a bad setting fails the deploy, not a request
logger = Logger(service="mailsage-api")
# AWS calls become subsegments (botocore only: patching every module X-Ray knows costs cold start).
# Outside Lambda (tests, `mailsage serve`) Powertools turns tracing off: nothing is patched or sent.
tracer = Tracer(service="mailsage-api", patch_modules=["botocore"])
# What the services counted, on AWS (locally nothing is counted, so nothing is written).
meter = PowertoolsMeter()
app = create_app(settings)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@meter.log_metrics
# The reply stays out of the trace: it holds customer data (content, API keys) and may pass 64 KB.
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)

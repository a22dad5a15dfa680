"""API Gateway (REST) -> MailSage v1. Routes live in mailsage.api; this file is the entry point."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from mailsage.api.app import create_app
from mailsage.settings import ApiSettings

settings = ApiSettings()  # validated at cold start: a bad setting fails the deploy, not a request
logger = Logger(service="mailsage-api")
app = create_app(settings)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)

"""The public HTTPS entry point: a regional REST API proxying every path to the api function."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import MailSageConfig
from infra.constructs import acknowledge

# Headers a browser client sends: the bearer key, JSON bodies and idempotency keys.
CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"]

# The cdk-nag findings the REST API accepts, each with its reason.
ACKNOWLEDGED = (
    (
        "AwsSolutions-APIG2",
        "No request validation at the gateway: the api function validates every body against "
        "its pydantic models and returns per-field errors that a gateway validator cannot.",
    ),
    (
        "AwsSolutions-APIG4",
        "No gateway authorizer: MailSage authenticates its own per-account bearer API keys "
        "(stored hashed, compared in constant time) inside the api function.",
    ),
    (
        "AwsSolutions-COG4",
        "No Cognito user pool: callers are systems holding MailSage API keys, which the api "
        "function verifies itself.",
    ),
    (
        "AwsSolutions-APIG6",
        "No execution logging: API Gateway would write it to a log group outside the stack (no "
        "retention, not deleted with it); the stage writes JSON access logs and the function logs "
        "every request as JSON.",
    ),
    (
        "AwsSolutions-APIG3",
        "No WAF web ACL by default: the stage is throttled and the function enforces per-key "
        "authentication and size limits; attach an account-managed web ACL where required.",
    ),
)


class Api(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: MailSageConfig, handler: lambda_.IFunction
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays.THREE_MONTHS if config.is_prod else logs.RetentionDays.ONE_MONTH,
            removal_policy=cdk.RemovalPolicy.RETAIN if config.is_prod else cdk.RemovalPolicy.DESTROY,
        )
        # Request size: API Gateway caps payloads at a fixed 10 MB (not configurable); the api
        # function enforces the tighter MAILSAGE_MAX_REQUEST_BYTES itself and replies 413.
        # Authentication: no API keys or authorizer here. MailSage authenticates its own bearer
        # keys (hashed at rest, per account) in the function, for both API surfaces.
        self.rest_api = apigateway.LambdaRestApi(
            self,
            "RestApi",
            handler=handler,
            proxy=True,
            description=f"MailSage email-sending API ({config.stage})",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            # The open-tracking pixel (/t/o/...) is a GIF: the function returns it base64-encoded and
            # the gateway decodes it for clients asking for images. No request body is an image.
            binary_media_types=["image/*"],
            default_cors_preflight_options=_cors(config),
            # Access logging needs the account's API Gateway CloudWatch role in the region, or the
            # first deploy fails ("CloudWatch Logs role ARN must be set in account settings"): set
            # it (AWS::ApiGateway::Account, a regional singleton, before the stage). Retained, so a
            # deleted stack (dev beside prod) leaves the setting naming a role that still exists.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=cdk.RemovalPolicy.RETAIN,
            deploy_options=_stage_options(config, self.access_logs),
        )
        role = self.rest_api.node.find_child("CloudWatchRole")
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "The role API Gateway itself assumes (apigateway.amazonaws.com) to write access logs in "
            "this region: the AWS managed policy made for it, logs actions only, as AWS documents.",
        )
        for rule, reason in ACKNOWLEDGED:
            acknowledge(self.rest_api, rule, reason)


def _cors(config: MailSageConfig) -> apigateway.CorsOptions | None:
    """Preflight answers for the configured browser origins; none configured, no CORS."""
    if not config.allowed_origins:
        return None
    return apigateway.CorsOptions(
        allow_origins=list(config.allowed_origins),
        allow_methods=apigateway.Cors.ALL_METHODS,
        allow_headers=CORS_HEADERS,
        max_age=cdk.Duration.hours(1),
    )


def _stage_options(config: MailSageConfig, access_logs: logs.ILogGroup) -> apigateway.StageOptions:
    """The stage: named after the MailSage stage, throttled, traced, with JSON access logs."""
    return apigateway.StageOptions(
        stage_name=config.stage,
        throttling_rate_limit=config.api_rate_limit,
        throttling_burst_limit=config.api_burst_limit,
        tracing_enabled=True,
        metrics_enabled=True,
        access_log_destination=apigateway.LogGroupLogDestination(access_logs),
        access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
            caller=False,
            http_method=True,
            ip=True,
            protocol=True,
            request_time=True,
            resource_path=True,
            response_length=True,
            status=True,
            user=False,
        ),
    )

"""The public HTTPS entry point: a regional REST API proxying every path to the api function."""

from __future__ import annotations

from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from constructs import Construct

from infra.config import CustomDomain, MailSageConfig
from infra.constructs import acknowledge

# Headers a browser client sends: the bearer key, JSON bodies and idempotency keys.
CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"]

# The unauthenticated routes: tracking pixel and links (/t/...) and unsubscribe (/u/...).
PUBLIC_ROUTES = ("t", "u")

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
        self.config = config
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
        _add_public_routes(self.rest_api, handler)
        self.domain = _custom_domain(self, config.custom_domain, self.rest_api)


def _add_public_routes(rest_api: apigateway.LambdaRestApi, handler: lambda_.IFunction) -> None:
    """/t and /u as resources of their own (the same function, the same proxying as every other
    path), so the stage can throttle them apart: prefetchers and link scanners hitting them at the
    send rate must not use up the limit that API callers share. LambdaRestApi forbids adding to its
    proxied root, so the resources are built directly on it."""
    integration = apigateway.LambdaIntegration(handler)
    root = cast(Construct, rest_api.root)  # typed as the interface; it is the root construct
    for path in PUBLIC_ROUTES:
        resource = apigateway.Resource(root, path.upper(), parent=rest_api.root, path_part=path)
        resource.add_method("ANY", integration)
        resource.add_proxy(default_integration=integration, any_method=True)


def _custom_domain(
    scope: Construct, domain: CustomDomain | None, rest_api: apigateway.RestApi
) -> apigateway.DomainName | None:
    """The API under the team's own name (REGIONAL, TLS 1.2), mapped to the stage, with an alias
    record when the hosted zone is given (otherwise the team points its DNS at the output)."""
    if domain is None:
        return None
    certificate = acm.Certificate.from_certificate_arn(scope, "Certificate", domain.certificate_arn)
    name = apigateway.DomainName(
        scope,
        "CustomDomain",
        domain_name=domain.name,
        certificate=certificate,
        endpoint_type=apigateway.EndpointType.REGIONAL,
        security_policy=apigateway.SecurityPolicy.TLS_1_2,
    )
    name.add_base_path_mapping(rest_api, stage=rest_api.deployment_stage)
    cdk.CfnOutput(scope, "CustomDomainTarget", value=name.domain_name_alias_domain_name)
    if domain.hosted_zone_id:
        zone = route53.HostedZone.from_hosted_zone_id(scope, "HostedZone", domain.hosted_zone_id)
        route53.ARecord(
            scope,
            "CustomDomainAlias",
            zone=zone,
            record_name=f"{domain.name}.",  # fully qualified: the imported zone's name is not known
            target=route53.RecordTarget.from_alias(targets.ApiGatewayDomain(name)),
        )
    return name


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
        method_options={
            # A method setting covers one resource (no subtree): the route and its proxy each.
            f"/{path}{proxy}/*": apigateway.MethodDeploymentOptions(
                throttling_rate_limit=config.public_routes_rate_limit,
                throttling_burst_limit=config.public_routes_burst_limit,
                metrics_enabled=True,  # a method setting replaces the stage's for its resource
            )
            for path in PUBLIC_ROUTES
            for proxy in ("", "/{proxy+}")
        },
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

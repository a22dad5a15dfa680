"""The public HTTPS entry point: a regional REST API proxying every path to the api function."""

from __future__ import annotations

import json
from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.config import CustomDomain, MailSageConfig
from infra.constructs import acknowledge
from infra.constructs.tracing import ApiSampling

# Headers a browser client sends: the bearer key, JSON bodies and idempotency keys.
CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"]

# The unauthenticated routes: tracking pixel and links (/t/...) and unsubscribe (/u/...).
PUBLIC_ROUTES = ("t", "u")

# Every request body reaches the function base64-encoded, so it grows by exactly 4/3 whatever its
# bytes (JSON-escaped as text, a control character takes 6): the bound infra/proxy_payload.py
# computes holds. The function decodes it (Powertools' decoded_body/json_body). Text replies
# (isBase64Encoded false: JSON, HTML pages) pass through unchanged; base64 ones (the open-tracking
# GIF) are decoded whatever the client's first Accept type. Its one trap, the CORS preflight's MOCK
# integration failing on a "binary" request, is closed in _preflight_as_text.
BINARY_MEDIA_TYPES = ["*/*"]

# The stage's access log: one JSON object per request. Every value is quoted: API Gateway writes
# "-" for a value a request has none of (no integration when throttled or blocked by WAF), which
# unquoted would not be JSON. The integration fields say why a request failed at the function
# (integrationErrorMessage, integration.status: the function's own status; integrationStatus:
# Lambda's), and integration.requestId is the Lambda invocation's request id, the key into the
# function's own log.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "ip": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "path": "$context.path",
    "protocol": "$context.protocol",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "integrationErrorMessage": "$context.integrationErrorMessage",
    "integration.status": "$context.integration.status",
    "integration.latency": "$context.integration.latency",
    "integration.requestId": "$context.integration.requestId",
    "errorMessage": "$context.error.message",
    "errorResponseType": "$context.error.responseType",
    "wafResponseCode": "$context.wafResponseCode",
    "xrayTraceId": "$context.xrayTraceId",
}

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
)
# Only without `web_acl_arn`: with it, the stage has its web ACL.
NO_WEB_ACL = (
    "AwsSolutions-APIG3",
    "No WAF web ACL by default: the stage is throttled and the function enforces per-key "
    "authentication and size limits; set the context key web_acl_arn to attach an account-managed "
    "regional web ACL where required.",
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
        # Request size: API Gateway caps payloads at a fixed 10 MB, Lambda its events at 6 MB; the
        # api function's MAILSAGE_MAX_REQUEST_BYTES is set below what fits (BINARY_MEDIA_TYPES), so
        # a larger body gets the function's own 413.
        # Authentication: no API keys or authorizer here. MailSage authenticates its own bearer
        # keys (hashed at rest, per account) in the function, for both API surfaces.
        self.rest_api = apigateway.LambdaRestApi(
            self,
            "RestApi",
            handler=handler,
            proxy=True,
            # The API's CloudWatch metrics are dimensioned by this name: one per stack, so the
            # alarms of dev and prod in one account each watch their own API.
            rest_api_name=cdk.Stack.of(self).stack_name,
            description=f"MailSage email-sending API ({config.stage})",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            binary_media_types=BINARY_MEDIA_TYPES,
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
        for rule, reason in ACKNOWLEDGED if config.web_acl_arn else (*ACKNOWLEDGED, NO_WEB_ACL):
            acknowledge(self.rest_api, rule, reason)
        _add_public_routes(self.rest_api, handler)
        _preflight_as_text(self.rest_api)
        self.web_acl = _web_acl(self, config.web_acl_arn, self.rest_api.deployment_stage)
        self.domain = _custom_domain(self, config.custom_domain, self.rest_api)
        if config.trace_sample_rate > 0:
            ApiSampling(self, "Sampling", config=config, rest_api=self.rest_api)


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


def _preflight_as_text(rest_api: apigateway.RestApi) -> None:
    """With `*/*` binary, every request is binary, and a MOCK integration cannot apply its request
    template to binary ("Unable to transform request": the CORS preflight answers 500). Converting
    the payload to text first, as AWS advises, lets the template run; the reply has no body."""
    for method in rest_api.methods:
        if method.http_method != "OPTIONS":
            continue
        cfn = cast(apigateway.CfnMethod, method.node.default_child)
        cfn.add_property_override("Integration.ContentHandling", "CONVERT_TO_TEXT")
        cfn.add_property_override("Integration.IntegrationResponses.0.ContentHandling", "CONVERT_TO_TEXT")


def _web_acl(
    scope: Construct, web_acl_arn: str | None, stage: apigateway.Stage
) -> wafv2.CfnWebACLAssociation | None:
    """The account's regional web ACL in front of the stage (the stage's ARN refers to the stage,
    so CloudFormation creates the association after it)."""
    if web_acl_arn is None:
        return None
    return wafv2.CfnWebACLAssociation(
        scope, "WebAclAssociation", resource_arn=stage.stage_arn, web_acl_arn=web_acl_arn
    )


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
        tracing_enabled=config.trace_sample_rate > 0,  # sampled by ApiSampling's rule
        metrics_enabled=True,
        access_log_destination=apigateway.LogGroupLogDestination(access_logs),
        access_log_format=apigateway.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
    )

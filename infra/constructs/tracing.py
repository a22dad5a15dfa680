"""What X-Ray records, and so what it costs: the API samples by a rule of this stack's own.

Lambda's active tracing samples with a fixed default rule (1 request/s, then 5%) that no
configuration reaches, so at transactional rates nearly every request became a trace: about 5
points of SES's price on single sends. Here API Gateway makes the one sampling decision, by an
`AWS::XRay::SamplingRule` matching this stack's stage only (`trace_sample_rate`, no reservoir),
and every function runs in PassThrough mode: it records a trace only when its caller sampled one.
- api: follows the gateway's decision.
- sender: fed by the send queues; traced only when the event source hands it a sampled header
  (records the api traced carry one). It never starts traces of its own.
- events, ingest, webhooks: fed by SES notifications, customers' queue messages and the events
  function; their records carry no sampled header, so they are not traced. Active tracing there
  would cost up to 1 trace/s each while busy (measured: 0.37 points of SES on a batch, 0.5 on
  single sends for events alone); their metrics, alarms and logs watch them instead.
`trace_sample_rate` 0 turns tracing off: no rule, no stage tracing, the Tracer disabled.
"""

from __future__ import annotations

import hashlib

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_xray as xray
from constructs import Construct

from infra.config import MailSageConfig

API_STAGE_SERVICE_TYPE = "AWS::ApiGateway::Stage"
# Rules are evaluated in ascending priority, the first match deciding. This one matches a single
# stage, so it may safely come before an account's broader rules (the default rule comes last).
RULE_PRIORITY = 10
RULE_NAME_MAX = 32  # X-Ray's limit; names are unique per account and region


def tracing_mode(config: MailSageConfig) -> lambda_.Tracing:
    """Every function's mode: PassThrough (follow the caller's decision), or none at rate 0."""
    return lambda_.Tracing.PASS_THROUGH if config.trace_sample_rate > 0 else lambda_.Tracing.DISABLED


def tracer_environment(config: MailSageConfig) -> dict[str, str]:
    """With tracing off, Powertools' Tracer is told so (it would otherwise try to record)."""
    return {} if config.trace_sample_rate > 0 else {"POWERTOOLS_TRACE_DISABLED": "true"}


def rule_name(stack_name: str) -> str:
    """The stack's name (one stack per stage), shortened with a digest when over X-Ray's limit."""
    if len(stack_name) <= RULE_NAME_MAX:
        return stack_name
    digest = hashlib.sha256(stack_name.encode()).hexdigest()[:8]
    return f"{stack_name[: RULE_NAME_MAX - 9]}-{digest}"


class ApiSampling(Construct):
    """The sampling rule of one REST API stage: a share of its requests, no reservoir.

    No reservoir because a reservoir of 1/s samples every request below 1/s: at transactional
    rates that is every request, and up to 2.6 M traces ($13) a month per stage busy all month.
    A rule itself costs nothing a month; an account holds a limited number of rules per region
    (25 by default, from memory), one per MailSage stage."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: MailSageConfig, rest_api: apigateway.RestApi
    ) -> None:
        super().__init__(scope, construct_id)
        stack_name = cdk.Stack.of(self).stack_name
        self.rule = xray.CfnSamplingRule(
            self,
            "Rule",
            sampling_rule=xray.CfnSamplingRule.SamplingRuleProperty(
                rule_name=rule_name(stack_name),
                priority=RULE_PRIORITY,
                fixed_rate=config.trace_sample_rate,
                reservoir_size=0,
                # API Gateway names its stage `{api name}/{stage name}`.
                service_name=f"{rest_api.rest_api_name}/{config.stage}",
                service_type=API_STAGE_SERVICE_TYPE,
                resource_arn="*",
                host="*",
                http_method="*",
                url_path="*",
                version=1,
            ),
        )

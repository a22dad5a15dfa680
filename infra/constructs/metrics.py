"""The metrics the alarms and the dashboard read, each selected by dimensions that name this
stack's own resource: two stages in one account and region never watch each other."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs

from infra.constructs.functions import FUNCTIONS, SENDER
from infra.constructs.queues import WorkQueue

PERIOD = cdk.Duration.minutes(5)
# The handlers' own metrics (mailsage/adapters/aws/metrics.py): EMF in this namespace, dimensioned by
# service and function name, never by account (every dimension value is a metric of its own, billed).
METRICS_NAMESPACE = "MailSage"
# In the order a message meets them: accepted, sent (or throttled, paced, parked, failed, suppressed),
# then what the recipient's side said, then the webhook that reports it.
BUSINESS_METRICS = (
    "MessagesAccepted",
    "MessagesSent",
    "Throttles",
    "PacedWaitSeconds",
    "JobsParked",
    "MessagesFailed",
    "MessagesSuppressed",
    "MessagesDelivered",
    "MessagesBounced",
    "MessagesComplained",
    "WebhookDeliveriesFailed",
)
SES_NAMESPACE = "AWS/SES"
# SES publishes the reputation rates of a configuration set with reputation metrics enabled (ours:
# infra/constructs/ses.py) under this dimension, beside the account's own (no dimension).
CONFIGURATION_SET_DIMENSION = "ses:configuration-set"


@dataclass(frozen=True)
class Watched:
    """This stack's resources that monitoring reads."""

    functions: dict[str, lambda_.IFunction]
    queues: dict[str, WorkQueue]
    schedule_dead_letters: sqs.IQueue
    rest_api: apigateway.RestApi
    table: dynamodb.ITable
    configuration_set_name: str

    @property
    def sender(self) -> lambda_.IFunction:
        return self.functions[SENDER.name]


def handler_metric(
    function_name: str, function: lambda_.IFunction, name: str, *, statistic: str = "Sum"
) -> cloudwatch.Metric:
    """One of a function's own metrics, by the dimensions its meter publishes."""
    service = next(spec.service for spec in FUNCTIONS if spec.name == function_name)
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": service, "function_name": function.function_name},
        period=PERIOD,
        statistic=statistic,
    )


def sender_metric(watched: Watched, name: str) -> cloudwatch.Metric:
    """One of the sender's own metrics, summed over 5 minutes."""
    return handler_metric(SENDER.name, watched.sender, name)


def business_metric(watched: Watched, name: str) -> cloudwatch.MathExpression:
    """A business metric summed over every function of this stack: the dashboard shows the count
    wherever it is taken (accepted by the api and ingest, suppressed at acceptance or at sending)."""
    metrics = {
        f"{name.lower()}_{function_name}": handler_metric(function_name, function, name)
        for function_name, function in watched.functions.items()
    }
    return cloudwatch.MathExpression(
        expression=f"SUM([{', '.join(metrics)}])", using_metrics=metrics, label=name, period=PERIOD
    )


def failure_rate(function: lambda_.IFunction) -> cloudwatch.MathExpression:
    """The share of a function's invocations that failed: raised, timed out, or were throttled (which
    Invocations does not count, so they join both sides). Lambda publishes Throttles only when there
    were some, hence FILL. A period in which every attempt was throttled has no Invocations, so no
    rate: the queues' age and dead-letter alarms see a consumer in that state."""
    return cloudwatch.MathExpression(
        expression="(errors + FILL(throttles, 0)) / (invocations + FILL(throttles, 0))",
        using_metrics={
            "errors": function.metric_errors(period=PERIOD, statistic="Sum"),
            "throttles": function.metric_throttles(period=PERIOD, statistic="Sum"),
            "invocations": function.metric_invocations(period=PERIOD, statistic="Sum"),
        },
        label="failed / attempted",
        period=PERIOD,
    )


def api_metric(watched: Watched, name: str, *, statistic: str) -> cloudwatch.Metric:
    """A REST API metric of this stack's API (its name) and stage: both dimensions, so neither
    another stage's API of the same name nor another stage of this API is counted."""
    stage = watched.rest_api.deployment_stage
    return cloudwatch.Metric(
        namespace="AWS/ApiGateway",
        metric_name=name,
        dimensions_map={"ApiName": watched.rest_api.rest_api_name, "Stage": stage.stage_name},
        period=PERIOD,
        statistic=statistic,
    )


def table_metric(watched: Watched, name: str, *, statistic: str = "Sum") -> cloudwatch.Metric:
    return watched.table.metric(name, period=PERIOD, statistic=statistic)


def table_throttles(watched: Watched) -> cloudwatch.MathExpression:
    """Read and write requests DynamoDB throttled on the table (each is published only when nonzero)."""
    return cloudwatch.MathExpression(
        expression="FILL(reads, 0) + FILL(writes, 0)",
        using_metrics={
            "reads": table_metric(watched, "ReadThrottleEvents"),
            "writes": table_metric(watched, "WriteThrottleEvents"),
        },
        label="throttled requests",
        period=PERIOD,
    )


def reputation_metric(
    watched: Watched, name: str, period: cdk.Duration, *, account: bool = False
) -> cloudwatch.Metric:
    """An SES reputation rate (0..1) of this stack's configuration set, or of the whole account."""
    return cloudwatch.Metric(
        namespace=SES_NAMESPACE,
        metric_name=name,
        dimensions_map=None if account else {CONFIGURATION_SET_DIMENSION: watched.configuration_set_name},
        period=period,
        statistic="Maximum",
    )

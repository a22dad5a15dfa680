"""One dashboard per stage: the sending pipeline left to right (accepted, queued, sent or held back,
what recipients' servers said, webhooks), then what carries it (API, functions, DynamoDB), then
every alarm's state."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from infra.constructs.alarms import (
    API_P90_LATENCY_MS,
    BOUNCE_RATE,
    COMPLAINT_RATE,
    PRIORITY_MAX_AGE_SECONDS,
    REPUTATION_PERIOD,
)
from infra.constructs.metrics import (
    PERIOD,
    Watched,
    api_metric,
    business_metric,
    reputation_metric,
    table_metric,
)

_LANES = ("priority", "send")  # the queues chunks wait in


def build_dashboard(
    scope: Construct, watched: Watched, alarms: list[cloudwatch.Alarm]
) -> cloudwatch.Dashboard:
    dashboard = cloudwatch.Dashboard(scope, "Dashboard", default_interval=cdk.Duration.hours(6))
    stack_name = cdk.Stack.of(scope).stack_name
    dashboard.add_widgets(
        cloudwatch.TextWidget(
            markdown=f"# {stack_name}: the sending pipeline\naccepted → queued → sent (or throttled, "
            "paced, parked, failed, suppressed) → delivered, bounced or complained → webhooks",
            width=24,
            height=2,
        )
    )
    dashboard.add_widgets(*_accepted_and_queued(watched))
    dashboard.add_widgets(*_sent_and_outcomes(watched))
    dashboard.add_widgets(*_reputation_and_webhooks(watched))
    dashboard.add_widgets(cloudwatch.TextWidget(markdown="## What carries it", width=24, height=1))
    dashboard.add_widgets(*_api(watched))
    dashboard.add_widgets(*_functions(watched))
    dashboard.add_widgets(*_storage_and_dead_letters(watched))
    dashboard.add_widgets(cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=24))
    return dashboard


def _graph(
    title: str,
    left: Sequence[cloudwatch.IMetric],
    *,
    right: Sequence[cloudwatch.IMetric] | None = None,
    left_annotations: list[cloudwatch.HorizontalAnnotation] | None = None,
    width: int = 6,
) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(
        title=title,
        left=list(left),
        right=list(right or []),
        left_annotations=left_annotations,
        width=width,
        height=6,
    )


def _accepted_and_queued(watched: Watched) -> list[cloudwatch.IWidget]:
    lanes = {name: watched.queues[name].queue for name in _LANES}
    return [
        _graph(
            "1. Accepted",
            [business_metric(watched, "MessagesAccepted")],
            right=[api_metric(watched, "Count", statistic="Sum").with_(label="API requests")],
        ),
        _graph(
            "2. Queued: chunks waiting",
            [
                q.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum", label=n)
                for n, q in lanes.items()
            ],
            right=[
                q.metric_approximate_number_of_messages_not_visible(
                    period=PERIOD, statistic="Maximum", label=f"{n} in flight or retried later"
                )
                for n, q in lanes.items()
            ],
        ),
        _graph(
            "2. Queued: oldest chunk (s)",
            [
                q.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum", label=n)
                for n, q in lanes.items()
            ],
            left_annotations=[
                cloudwatch.HorizontalAnnotation(value=PRIORITY_MAX_AGE_SECONDS, label="priority alarm")
            ],
        ),
        _graph(
            "3. Sent, throttled, parked",
            [business_metric(watched, name) for name in ("MessagesSent", "Throttles", "JobsParked")],
        ),
    ]


def _sent_and_outcomes(watched: Watched) -> list[cloudwatch.IWidget]:
    return [
        _graph("3. Paced wait (s)", [business_metric(watched, "PacedWaitSeconds")]),
        _graph(
            "3. Failed and suppressed",
            [business_metric(watched, name) for name in ("MessagesFailed", "MessagesSuppressed")],
        ),
        _graph(
            "4. Delivered",
            [business_metric(watched, "MessagesDelivered")],
        ),
        _graph(
            "4. Bounced and complained",
            [business_metric(watched, name) for name in ("MessagesBounced", "MessagesComplained")],
        ),
    ]


def _reputation_and_webhooks(watched: Watched) -> list[cloudwatch.IWidget]:
    webhooks = watched.queues["webhooks"].queue
    return [
        cloudwatch.GraphWidget(
            title="4. SES reputation (0..1)",
            left=[
                reputation_metric(watched, name, REPUTATION_PERIOD, account=account).with_(
                    label=f"{name} ({'account' if account else 'this stage'})"
                )
                for name in ("Reputation.BounceRate", "Reputation.ComplaintRate")
                for account in (False, True)
            ],
            left_annotations=[
                cloudwatch.HorizontalAnnotation(value=BOUNCE_RATE, label="bounce alarm"),
                cloudwatch.HorizontalAnnotation(value=COMPLAINT_RATE, label="complaint alarm"),
            ],
            width=12,
            height=6,
        ),
        _graph("5. Webhook deliveries failed", [business_metric(watched, "WebhookDeliveriesFailed")]),
        _graph(
            "5. Webhooks waiting",
            [webhooks.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum")],
            right=[webhooks.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum")],
        ),
    ]


def _api(watched: Watched) -> list[cloudwatch.IWidget]:
    return [
        _graph(
            "API requests",
            [api_metric(watched, "Count", statistic="Sum")],
            right=[api_metric(watched, name, statistic="Sum") for name in ("4XXError", "5XXError")],
        ),
        _graph(
            "API latency (ms)",
            [api_metric(watched, "Latency", statistic=p) for p in ("p50", "p90", "p99")],
            left_annotations=[cloudwatch.HorizontalAnnotation(value=API_P90_LATENCY_MS, label="p90 alarm")],
        ),
        _graph(
            "API integration latency (ms)",
            [api_metric(watched, "IntegrationLatency", statistic=p) for p in ("p50", "p90", "p99")],
        ),
        _graph(
            "API 5XX rate",
            [api_metric(watched, "5XXError", statistic="Average")],
        ),
    ]


def _functions(watched: Watched) -> list[cloudwatch.IWidget]:
    functions = watched.functions.items()
    return [
        _graph(
            "Invocations",
            [f.metric_invocations(period=PERIOD, statistic="Sum", label=n) for n, f in functions],
        ),
        _graph(
            "Function errors",
            [f.metric_errors(period=PERIOD, statistic="Sum", label=n) for n, f in functions],
        ),
        _graph(
            "Function throttles",
            [f.metric_throttles(period=PERIOD, statistic="Sum", label=n) for n, f in functions],
        ),
        _graph(
            "Duration p90 (ms)",
            [f.metric_duration(period=PERIOD, statistic="p90", label=n) for n, f in functions],
        ),
    ]


def _storage_and_dead_letters(watched: Watched) -> list[cloudwatch.IWidget]:
    return [
        _graph(
            "DynamoDB consumed capacity",
            [table_metric(watched, "ConsumedReadCapacityUnits").with_(label="read")],
            right=[table_metric(watched, "ConsumedWriteCapacityUnits").with_(label="write")],
        ),
        _graph(
            "DynamoDB throttled",
            [
                table_metric(watched, "ReadThrottleEvents").with_(label="reads"),
                table_metric(watched, "WriteThrottleEvents").with_(label="writes"),
            ],
        ),
        _graph(
            "Dead-lettered messages",
            [
                w.dlq.metric_approximate_number_of_messages_visible(
                    period=PERIOD, statistic="Maximum", label=n
                )
                for n, w in watched.queues.items()
            ]
            + [
                watched.schedule_dead_letters.metric_approximate_number_of_messages_visible(
                    period=PERIOD, statistic="Maximum", label="schedules"
                )
            ],
            width=12,
        ),
    ]

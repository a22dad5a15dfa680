"""Alarms on what needs a human (anything dead-lettered, function errors and throttles, API 5XX,
provider throttles that persist, a job parked on the provider's quota, transactional mail waiting),
an SNS topic they notify, and one dashboard."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import MailSageConfig
from infra.constructs.functions import SENDER
from infra.constructs.queues import WorkQueue

_PERIOD = cdk.Duration.minutes(5)
# The sender's own metrics (mailsage/adapters/aws/metrics.py): EMF in this namespace, dimensioned by
# service and function name, so each stage's alarms watch only its own sender.
METRICS_NAMESPACE = "MailSage"
# Throttles in each of 3 consecutive periods: the pacer keeps them rare, so a steady stream means
# something else sends on this account's quota, or the configured rate is above what SES allows.
THROTTLES_PER_PERIOD, THROTTLE_PERIODS = 10, 3
# A transactional chunk waiting longer than this in the priority lane has missed its promise.
PRIORITY_MAX_AGE_SECONDS = 60


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MailSageConfig,
        functions: dict[str, lambda_.IFunction],
        queues: dict[str, WorkQueue],
        schedule_dead_letters: sqs.IQueue,
        rest_api: apigateway.RestApi,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarm_topic = sns.Topic(self, "AlarmTopic", display_name="MailSage alarms", enforce_ssl=True)
        if config.alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        self._notify = actions.SnsAction(self.alarm_topic)
        self.alarms: list[cloudwatch.Alarm] = []
        self._queue_alarms(queues, schedule_dead_letters)
        self._function_alarms(functions)
        self._sending_alarms(functions[SENDER.name], queues["priority"])
        self._alarm(
            "Api5xx",
            rest_api.metric_server_error(period=_PERIOD, statistic="Sum"),
            "The REST API returned 5XX responses.",
        )
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=cdk.Duration.hours(6))
        self.dashboard.add_widgets(*self._api_widgets(rest_api))
        self.dashboard.add_widgets(*_function_widgets(functions))
        self.dashboard.add_widgets(*_queue_widgets(queues))
        self.dashboard.add_widgets(*_sending_widgets(functions[SENDER.name]))

    # --- alarms: any dead-lettered message, any function error or throttle, any API 5XX ---------

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.Metric,
        description: str,
        *,
        threshold: float = 0,
        periods: int = 1,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    ) -> None:
        created = metric.create_alarm(
            self,
            construct_id,
            alarm_description=description,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        created.add_alarm_action(self._notify)
        self.alarms.append(created)

    def _queue_alarms(self, queues: dict[str, WorkQueue], schedule_dead_letters: sqs.IQueue) -> None:
        for name, work in queues.items():
            self._alarm(
                f"{name.capitalize()}DeadLetters",
                work.dlq.metric_approximate_number_of_messages_visible(period=_PERIOD, statistic="Maximum"),
                f"Messages in the {name} dead-letter queue: inspect them, fix the cause, redrive.",
            )
        self._alarm(
            "ScheduleDeadLetters",
            schedule_dead_letters.metric_approximate_number_of_messages_visible(
                period=_PERIOD, statistic="Maximum"
            ),
            "A scheduled send EventBridge Scheduler could not deliver: the job never started; redrive it.",
        )

    def _function_alarms(self, functions: dict[str, lambda_.IFunction]) -> None:
        for name, function in functions.items():
            self._alarm(
                f"{name.capitalize()}Errors",
                function.metric_errors(period=_PERIOD, statistic="Sum"),
                f"The {name} function raised errors.",
            )
            self._alarm(
                f"{name.capitalize()}Throttles",
                function.metric_throttles(period=_PERIOD, statistic="Sum"),
                f"The {name} function was throttled (account concurrency exhausted?).",
            )

    def _sending_alarms(self, sender: lambda_.IFunction, priority: WorkQueue) -> None:
        self._alarm(
            "SenderProviderThrottles",
            sender_metric(sender, "Throttles"),
            f"The provider kept throttling sends (more than {THROTTLES_PER_PERIOD} per 5 minutes, "
            f"{THROTTLE_PERIODS} periods running): another sender shares the SES quota, or ses_max_rate "
            "is above it. Nothing fails, but mail goes out late.",
            threshold=THROTTLES_PER_PERIOD,
            periods=THROTTLE_PERIODS,
        )
        self._alarm(
            "SenderJobsParked",
            sender_metric(sender, "JobsParked"),
            "A job was parked: the provider's daily quota ran out or SES paused sending. It resumes by "
            "itself when the quota allows; after a pause, once sending is resumed in SES.",
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        self._alarm(
            "PriorityQueueAge",
            priority.queue.metric_approximate_age_of_oldest_message(period=_PERIOD, statistic="Maximum"),
            f"Transactional mail waited more than {PRIORITY_MAX_AGE_SECONDS} s in the priority lane: "
            "its senders are all busy or failing.",
            threshold=PRIORITY_MAX_AGE_SECONDS,
        )

    # --- the dashboard: one row for the API, one for the functions, one for the queues ---------

    def _api_widgets(self, rest_api: apigateway.RestApi) -> list[cloudwatch.IWidget]:
        return [
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[rest_api.metric_count(period=_PERIOD, statistic="Sum")],
                right=[
                    rest_api.metric_client_error(period=_PERIOD, statistic="Sum"),
                    rest_api.metric_server_error(period=_PERIOD, statistic="Sum"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="API latency (p99)",
                left=[rest_api.metric_latency(period=_PERIOD, statistic="p99")],
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms),
        ]


def _function_widgets(functions: dict[str, lambda_.IFunction]) -> list[cloudwatch.IWidget]:
    return [
        cloudwatch.GraphWidget(
            title="Invocations",
            left=[
                f.metric_invocations(period=_PERIOD, statistic="Sum", label=n) for n, f in functions.items()
            ],
        ),
        cloudwatch.GraphWidget(
            title="Errors and throttles",
            left=[f.metric_errors(period=_PERIOD, statistic="Sum", label=n) for n, f in functions.items()],
            right=[
                f.metric_throttles(period=_PERIOD, statistic="Sum", label=n) for n, f in functions.items()
            ],
        ),
        cloudwatch.GraphWidget(
            title="Duration (p99)",
            left=[f.metric_duration(period=_PERIOD, statistic="p99", label=n) for n, f in functions.items()],
        ),
    ]


def _queue_widgets(queues: dict[str, WorkQueue]) -> list[cloudwatch.IWidget]:
    return [
        cloudwatch.GraphWidget(
            title="Queue depth",
            left=[
                w.queue.metric_approximate_number_of_messages_visible(
                    period=_PERIOD, statistic="Maximum", label=n
                )
                for n, w in queues.items()
            ],
        ),
        cloudwatch.GraphWidget(
            title="Oldest message age (s)",
            left=[
                w.queue.metric_approximate_age_of_oldest_message(period=_PERIOD, statistic="Maximum", label=n)
                for n, w in queues.items()
            ],
        ),
        cloudwatch.GraphWidget(
            title="Dead-lettered messages",
            left=[
                w.dlq.metric_approximate_number_of_messages_visible(
                    period=_PERIOD, statistic="Maximum", label=n
                )
                for n, w in queues.items()
            ],
        ),
    ]


def sender_metric(sender: lambda_.IFunction, name: str) -> cloudwatch.Metric:
    """One of the sender's own metrics, summed over 5 minutes."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": SENDER.service, "function_name": sender.function_name},
        period=_PERIOD,
        statistic="Sum",
    )


def _sending_widgets(sender: lambda_.IFunction) -> list[cloudwatch.IWidget]:
    return [
        cloudwatch.GraphWidget(
            title="Messages sent and throttled",
            left=[sender_metric(sender, "MessagesSent")],
            right=[sender_metric(sender, "Throttles")],
        ),
        cloudwatch.GraphWidget(
            title="Paced wait (s) and jobs parked",
            left=[sender_metric(sender, "PacedWaitSeconds")],
            right=[sender_metric(sender, "JobsParked")],
        ),
    ]

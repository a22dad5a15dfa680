"""Alarms on what needs a human (anything dead-lettered, function errors and throttles, API 5XX),
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
from infra.constructs.queues import WorkQueue

_PERIOD = cdk.Duration.minutes(5)


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
        self._alarm(
            "Api5xx",
            rest_api.metric_server_error(period=_PERIOD, statistic="Sum"),
            "The REST API returned 5XX responses.",
        )
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=cdk.Duration.hours(6))
        self.dashboard.add_widgets(*self._api_widgets(rest_api))
        self.dashboard.add_widgets(*_function_widgets(functions))
        self.dashboard.add_widgets(*_queue_widgets(queues))

    # --- alarms: any dead-lettered message, any function error or throttle, any API 5XX ---------

    def _alarm(self, construct_id: str, metric: cloudwatch.Metric, description: str) -> None:
        created = metric.create_alarm(
            self,
            construct_id,
            alarm_description=description,
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
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

"""Monitoring: the alarm topic, the alarms on what needs a person (infra/constructs/alarms.py) and
the stage's dashboard (infra/constructs/dashboard.py), all over the metrics of
infra/constructs/metrics.py."""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import MailSageConfig
from infra.constructs.alarms import (  # noqa: F401 (the thresholds tests read from here)
    PRIORITY_MAX_AGE_SECONDS,
    THROTTLE_PERIODS,
    THROTTLES_PER_PERIOD,
    Alarms,
)
from infra.constructs.dashboard import build_dashboard
from infra.constructs.metrics import METRICS_NAMESPACE, Watched, sender_metric  # noqa: F401
from infra.constructs.queues import WorkQueue


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
        table: dynamodb.ITable,
        configuration_set_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarm_topic = sns.Topic(self, "AlarmTopic", display_name="MailSage alarms", enforce_ssl=True)
        if config.alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        watched = Watched(
            functions=functions,
            queues=queues,
            schedule_dead_letters=schedule_dead_letters,
            rest_api=rest_api,
            table=table,
            configuration_set_name=configuration_set_name,
        )
        self.alarms: list[cloudwatch.Alarm] = Alarms(self, watched, actions.SnsAction(self.alarm_topic)).all
        self.dashboard = build_dashboard(self, watched, self.alarms)

"""The MailSage stack: the shared platform (table, queues, scheduling, SES, layers, signing key),
one capability per function (each owns its function, environment and grants: infra/capabilities.py),
monitoring over all of them, and the stack outputs. Environment-agnostic: it synthesizes without
credentials."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from infra.capabilities import Feedback, HttpApi, Ingest, Sending, WebhookDelivery
from infra.config import MailSageConfig
from infra.constructs.functions import MailSageFunction
from infra.constructs.monitoring import Monitoring
from infra.platform import Platform


class MailSageStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: MailSageConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        platform = Platform.build(self, config)
        api = HttpApi(platform)
        self.functions: dict[str, MailSageFunction] = {
            "api": api.function,
            "sender": Sending(platform, public_url=api.url).function,
            "ingest": Ingest(platform).function,
            "events": Feedback(platform).function,
            "webhooks": WebhookDelivery(platform).function,
        }
        monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            functions={name: f.function for name, f in self.functions.items()},
            queues=platform.queues.all,
            schedule_dead_letters=platform.scheduling.dead_letter_queue,
            rest_api=api.gateway.rest_api,
            table=platform.storage.table,
            configuration_set_name=platform.ses.configuration_set_name,
        )
        self._outputs(platform, monitoring)
        if config.custom_domain:
            self._certificate_in_region(config.custom_domain.certificate_arn)

    def _certificate_in_region(self, certificate_arn: str) -> None:
        """A REGIONAL API domain needs its certificate in the stack's region. The stack is
        environment-agnostic, so synthesis cannot compare them: a template rule does, when the
        change set is created, before anything is built or rolled back."""
        cdk.CfnRule(
            self,
            "CertificateInStackRegion",
            assertions=[
                cdk.CfnRuleAssertion(
                    assert_=cdk.Fn.condition_equals(
                        cdk.Fn.select(3, cdk.Fn.split(":", certificate_arn)), cdk.Aws.REGION
                    ),
                    assert_description=(
                        "custom_domain_certificate_arn must be an ACM certificate in the stack's region "
                        "(a regional API Gateway domain cannot use one from another region)"
                    ),
                )
            ],
        )

    def _outputs(self, platform: Platform, monitoring: Monitoring) -> None:
        # The API's base URL is output by LambdaRestApi itself (ApiRestApiEndpoint...).
        queues = platform.queues
        cdk.CfnOutput(self, "IngestQueueUrl", value=queues.ingest.queue.queue_url)
        cdk.CfnOutput(self, "IngestQueueArn", value=queues.ingest.queue.queue_arn)
        cdk.CfnOutput(self, "ConfigurationSetName", value=platform.ses.configuration_set_name)
        cdk.CfnOutput(self, "AlarmTopicArn", value=monitoring.alarm_topic.topic_arn)
        cdk.CfnOutput(self, "TableName", value=platform.storage.table.table_name)
        cdk.CfnOutput(self, "WebhookQueueUrl", value=queues.webhooks.queue.queue_url)

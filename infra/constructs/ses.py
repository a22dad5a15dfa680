"""SES: the configuration set every message is sent with, its one event destination, the sender
identities this stack creates and the ones it only references (already in the account).

The destination is the context's `ses_event_destination`: "sns" (the default), a topic the events
queue subscribes to with raw delivery, so each SQS body is the SES event itself; or "eventbridge",
the default bus, where this stack's rule sends the set's events to the events queue (each body the
EventBridge event, the SES event as its `detail`). EventBridge charges nothing for these events, but
AWS documents SES's delivery to it as best effort, and a lost bounce leaves an address unsuppressed.
"""

from __future__ import annotations

import re

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import MailSageConfig
from infra.constructs import acknowledge
from mailsage.adapters.aws import ses_events

SEND_ACTIONS = ("ses:SendEmail", "ses:SendRawEmail")
# Only the events that move a message (domain/feedback.py). Never OPEN or CLICK: a destination
# subscribing them turns on SES's own tracking (its pixel, every link rewritten) in all HTML mail.
# Not SEND: the sender already records a message as sent, so each would be a publish, a queue
# message and an invocation for nothing. Each with the eventType SES gives it (what the events rule matches).
EVENTS = {
    ses.EmailSendingEvent.DELIVERY: "Delivery",
    ses.EmailSendingEvent.DELIVERY_DELAY: "DeliveryDelay",
    ses.EmailSendingEvent.BOUNCE: "Bounce",
    ses.EmailSendingEvent.COMPLAINT: "Complaint",
    ses.EmailSendingEvent.REJECT: "Reject",
    ses.EmailSendingEvent.RENDERING_FAILURE: "Rendering Failure",
}


def _construct_id(identity: str) -> str:
    return "Identity" + "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", identity))


class Ses(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MailSageConfig,
        events_queue: sqs.IQueue,
        events_dead_letters: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.configuration_set = ses.ConfigurationSet(
            self,
            "ConfigurationSet",
            reputation_metrics=True,
            sending_enabled=True,
            suppression_reasons=ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS,
        )
        self.configuration_set_name = self.configuration_set.configuration_set_name
        self.configuration_set_arn = stack.format_arn(
            service="ses", resource="configuration-set", resource_name=self.configuration_set_name
        )

        # Either path reaches the same queue, and the events function reads both envelopes: a stack
        # switched from one to the other still applies what the old path queued or dead-lettered.
        if config.ses_event_destination == "eventbridge":
            path = self._events_through_bus(events_queue, events_dead_letters)
        else:
            path = self._events_through_topic(events_queue, events_dead_letters)
        self._switch_after(path, events_queue, events_dead_letters)

        self.identities = {name: self._identity(name) for name in config.sender_identities}
        # Verified in the account already (an EmailIdentity for them would fail the deploy): only
        # their ARNs, for the sender's policy.
        self.existing_identities = config.existing_sender_identities

    def _events_through_topic(
        self, events_queue: sqs.IQueue, events_dead_letters: sqs.IQueue
    ) -> list[Construct]:
        """SES publishes to a topic the events queue subscribes to: one SNS publish per event.
        Returns the path's parts (its destination, its subscription)."""
        self.topic = sns.Topic(self, "EventsTopic", display_name="MailSage SES events", enforce_ssl=True)
        # The event destination adds the topic policy: SES may publish for this configuration set only.
        destination = self.configuration_set.add_event_destination(
            "ToTopic",
            destination=ses.EventDestination.sns_topic(self.topic),
            events=list(EVENTS),
        )
        # An event SNS cannot deliver (the queue's policy broken, the queue gone) lands beside the
        # ones the events function failed on: both are SES events not yet applied, the function reads
        # either body (raw or in SNS's envelope: ses_events.unwrap), so one alarm and one redrive to
        # the events queue serve both. The subscription adds the DLQ policy's statement: SNS may
        # send to it for this topic only.
        subscription = self.topic.add_subscription(
            subscriptions.SqsSubscription(
                events_queue, raw_message_delivery=True, dead_letter_queue=events_dead_letters
            )
        )
        # CDK creates the subscription after the queue's policy; here the policy waits for it
        # (_switch_after). Creating it needs no permission on the queue, only delivering does.
        cfn_subscription = subscription.node.default_child
        assert isinstance(cfn_subscription, cdk.CfnResource)
        cfn_subscription.add_deletion_override("DependsOn")
        return [destination, subscription]

    def _events_through_bus(
        self, events_queue: sqs.IQueue, events_dead_letters: sqs.IQueue
    ) -> list[Construct]:
        """SES publishes the configuration set's events to the default bus (AWS service events: no
        charge per event, unlike an SNS publish); this stack's rule sends them to the events queue.
        Returns the path's parts (its destination, its rule)."""
        pattern = ses_events.event_pattern(self.configuration_set_name, EVENTS.values())
        self.events_rule = events.Rule(
            self,
            "EventsRule",
            description="MailSage: this configuration set's SES events to the events queue",
            event_pattern=events.EventPattern(
                source=pattern["source"], detail_type=pattern["detail-type"], detail=pattern["detail"]
            ),
        )
        # The target adds the queue policy's statement: EventBridge may send for this rule only. An
        # event it cannot deliver (the queue's policy broken, the queue gone) after its retries (24 h)
        # lands beside the ones the events function failed on: both are SES events not yet applied,
        # the function reads either (ses_events.unwrap), so one alarm and one redrive serve both.
        # The target adds that queue's statement too, for this rule only.
        self.events_rule.add_target(targets.SqsQueue(events_queue, dead_letter_queue=events_dead_letters))
        destination = self.configuration_set.add_event_destination(
            "ToEventBus",
            destination=ses.EventDestination.event_bus(
                events.EventBus.from_event_bus_name(self, "DefaultBus", "default")
            ),
            events=list(EVENTS),
        )
        # SES publishes only once the rule exists: none is dropped on the bus during a deploy.
        destination.node.add_dependency(self.events_rule)
        return [destination, self.events_rule]

    def _switch_after(self, path: list[Construct], *queues: sqs.IQueue) -> None:
        """A queue's policy lets one path send: switching the destination rewrites it, dropping the
        old path's statement, while CloudFormation deletes the old destination only at the end of
        the deploy. Rewritten once the new path is complete, so one path always delivers (both for
        a moment: an event may arrive twice, and the events function applies it once)."""
        for queue in queues:
            policy = queue.node.try_find_child("Policy")  # the queue's QueuePolicy
            if policy is not None:
                policy.node.add_dependency(*path)

    def _identity(self, name: str) -> ses.EmailIdentity:
        """A sender identity this stack creates, for a domain or an address."""
        is_address = "@" in name
        identity = ses.EmailIdentity(
            self,
            _construct_id(name),
            identity=ses.Identity.email(name) if is_address else ses.Identity.domain(name),
            configuration_set=self.configuration_set,
        )
        if not is_address:
            # Easy DKIM: publish these three CNAME records in the domain's DNS.
            for i, record in enumerate(identity.dkim_records, start=1):
                cdk.CfnOutput(
                    self,
                    f"{_construct_id(name)}Dkim{i}",
                    value=cdk.Fn.join(" CNAME ", [record.name, record.value]),
                    description=f"DKIM record {i} for {name}",
                )
        return identity

    def identity_arns(self) -> list[str]:
        stack = cdk.Stack.of(self)
        arns = [identity.email_identity_arn for identity in self.identities.values()]
        arns += [
            stack.format_arn(service="ses", resource="identity", resource_name=name)
            for name in self.existing_identities
        ]
        # None named in the context: they are verified outside this stack (see infra/README.md).
        return arns or [stack.format_arn(service="ses", resource="identity", resource_name="*")]

    def grant_send(self, function: lambda_.Function) -> None:
        """SendEmail/SendRawEmail with the sender identities and this configuration set only."""
        iam.Grant.add_to_principal(
            grantee=function,
            actions=list(SEND_ACTIONS),
            resource_arns=[*self.identity_arns(), self.configuration_set_arn],
        )
        if not (self.identities or self.existing_identities):
            assert function.role is not None
            acknowledge(
                function.role,
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ses:<AWS::Region>:<AWS::AccountId>:identity/*]",
                "No sender_identities or existing_sender_identities in the context (the dev stage): the "
                "sending identities are verified outside this stack, and SES authorizes SendEmail against "
                "the identity ARN, so the sender may use this account's identities in this region (only "
                "with MailSage's configuration set). Name them in either key to scope it.",
            )

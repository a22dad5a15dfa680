"""EventBridge Scheduler for sends at a later time: a schedule group, and the role the one-time
schedules assume to drop the job's chunks on the send queue."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs import acknowledge
from infra.constructs.queues import dead_letter_queue

SCHEDULER_SERVICE = "scheduler.amazonaws.com"
SCHEDULE_ACTIONS = (
    "scheduler:CreateSchedule",
    "scheduler:UpdateSchedule",
    "scheduler:DeleteSchedule",
    "scheduler:GetSchedule",
)


class Scheduling(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        send_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.group = scheduler.CfnScheduleGroup(self, "Group")  # CloudFormation names it
        # `Ref` of a schedule group is its name.
        self.group_name: str = self.group.ref
        # Its own dead-letter queue: a schedule EventBridge could not deliver is a whole job that
        # never started, worth an alarm of its own (MailSage sets it on every schedule it creates).
        self.dead_letter_queue = dead_letter_queue(self, "DeadLetters")
        self.role = iam.Role(
            self,
            "Role",
            description="EventBridge Scheduler: deliver MailSage scheduled sends to the send queue",
            # Confused-deputy guard: only schedules in this account may assume it.
            assumed_by=iam.ServicePrincipal(
                SCHEDULER_SERVICE, conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
        )
        send_queue.grant(self.role, "sqs:SendMessage")
        self.dead_letter_queue.grant(self.role, "sqs:SendMessage")
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This queue is itself a dead-letter queue: EventBridge Scheduler's, named on each schedule "
            "MailSage creates (no redrive policy points at it, which is what the rule looks for).",
        )
        self.schedules_arn = stack.format_arn(
            service="scheduler", resource="schedule", resource_name=f"{self.group_name}/*"
        )

    def grant_schedule_management(self, function: lambda_.Function) -> None:
        """Create, update, get and delete schedules in this group only, and hand them this role only."""
        iam.Grant.add_to_principal(
            grantee=function, actions=list(SCHEDULE_ACTIONS), resource_arns=[self.schedules_arn]
        )
        function.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": SCHEDULER_SERVICE}},
            )
        )
        group_id = cdk.Stack.of(self).get_logical_id(self.group)
        assert function.role is not None
        acknowledge(
            function.role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:"
            f"schedule/<{group_id}>/*]",
            "One-time schedules are named per job at run time, so their names are not known at deploy "
            "time; the wildcard covers schedules in MailSage's own schedule group only.",
        )

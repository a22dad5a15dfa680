"""The one DynamoDB table. Its key schema comes from the store adapter's own module, so the
adapter, the moto tests and the deployed table cannot drift apart."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import MailSageConfig
from infra.constructs import acknowledge
from infra.reattach import existing_table
from mailsage.adapters.aws.table import (
    GSI1_NAME,
    GSI1_PARTITION_KEY,
    GSI1_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
)

_STRING = dynamodb.AttributeType.STRING


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: MailSageConfig) -> None:
        super().__init__(scope, construct_id)
        self.table: dynamodb.ITable = existing_table(self, "Table", config) or self._new_table(config)

    def _new_table(self, config: MailSageConfig) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=_STRING),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=_STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=TTL_ATTRIBUTE,
            deletion_protection=config.deletion_protection,
            removal_policy=cdk.RemovalPolicy.RETAIN if config.is_prod else cdk.RemovalPolicy.DESTROY,
        )
        table.add_global_secondary_index(
            index_name=GSI1_NAME,
            partition_key=dynamodb.Attribute(name=GSI1_PARTITION_KEY, type=_STRING),
            sort_key=dynamodb.Attribute(name=GSI1_SORT_KEY, type=_STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        return table

    def grant_read_write_data(self, function: lambda_.Function) -> None:
        """Item reads and writes on the table and its indexes; never table-level operations
        (no DeleteTable, UpdateTable or CreateTable)."""
        self.table.grant_read_write_data(function)
        assert function.role is not None
        acknowledge(
            function.role,
            f"AwsSolutions-IAM5[Resource::{self._index_arn_pattern()}]",
            "Queries on the table's own global secondary indexes (gsi1): the index ARN pattern is "
            "scoped to this one table.",
        )

    def _index_arn_pattern(self) -> str:
        """The table's index ARN pattern as cdk-nag names it in a finding."""
        child = self.table.node.default_child
        if child is None:  # re-attached by name: a plain ARN with the stack's pseudo parameters
            return (
                "arn:<AWS::Partition>:dynamodb:<AWS::Region>:<AWS::AccountId>:"
                f"table/{self.table.table_name}/index/*"
            )
        return f"<{cdk.Stack.of(self).get_logical_id(child)}.Arn>/index/*"  # type: ignore[arg-type]

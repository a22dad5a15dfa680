"""Re-attaching what an earlier stack retained. prod's table and signing key outlive their stack
(RETAIN): after the stack is deleted or recreated, `existing_table_name` and
`existing_signing_secret_name` make the new stack reference them by name instead of creating
empty ones, so stored mail, API keys and the tracking and unsubscribe links in mail already
delivered keep working. The functions get the same environment and grants either way."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import MailSageConfig
from mailsage.adapters.aws.table import GSI1_NAME


def existing_table(scope: Construct, construct_id: str, config: MailSageConfig) -> dynamodb.ITable | None:
    """The retained table named in the context, or None to create one. Its index is named so that
    grants cover `<table>/index/gsi1` as they do for a table the stack owns."""
    if config.existing_table_name is None:
        return None
    return dynamodb.Table.from_table_attributes(
        scope, construct_id, table_name=config.existing_table_name, global_indexes=[GSI1_NAME]
    )


def existing_signing_secret(
    scope: Construct, construct_id: str, config: MailSageConfig
) -> secretsmanager.ISecret | None:
    """The retained signing secret named in the context, or None to generate one."""
    if config.existing_signing_secret_name is None:
        return None
    return secretsmanager.Secret.from_secret_name_v2(scope, construct_id, config.existing_signing_secret_name)


def secret_reference(secret: secretsmanager.ISecret) -> str:
    """What GetSecretValue is given: the full ARN of a secret the stack owns; the name of a
    re-attached one (its ARN is only known up to the random suffix Secrets Manager adds)."""
    return secret.secret_arn if isinstance(secret, secretsmanager.Secret) else secret.secret_name

"""Stages and data: the default retention lands in every function, and a redeploy re-attaches
prod's retained table and signing secret by name (same environment, same grants, nothing new
created); `make deploy` says that dev's data goes with its stack."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.config import DEFAULT_RETENTION_DAYS, ConfigError, MailSageConfig
from mailsage.adapters.aws.table import GSI1_NAME
from mailsage.settings import SenderSettings
from tests.infra.conftest import CONFIGURED, ROOT, Synthesized, _synthesize, cdk_json_context
from tests.infra.test_nag_and_lint import synthesize_with_nag
from tests.infra.test_stack import (
    FUNCTION_NAMES,
    environment,
    function_statements,
    secret_resources,
    statements_with,
)

TABLE = "MailSage-prod-StorageTableB43FDCE7-1Q2W3E4R5T6Y"
SECRET = "SigningSecretCF7EC744-AbCdEfGh1234"
REATTACHED = {**CONFIGURED, "existing_table_name": TABLE, "existing_signing_secret_name": SECRET}


@pytest.fixture(scope="module")
def reattached(
    build_app: Callable[..., tuple[Any, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Synthesized:
    return _synthesize(build_app, REATTACHED, tmp_path_factory.mktemp("template") / "reattached.json")


# --- retention ---------------------------------------------------------------------------------


def test_default_retention_reaches_every_function_and_its_settings(synthesized: Synthesized) -> None:
    # Given cdk.json's context (no retention chosen by the user)
    # Then every function keeps a job's records 90 days, and its settings read that value
    assert DEFAULT_RETENTION_DAYS == 90
    for name in FUNCTION_NAMES:
        value = environment(synthesized, name)["MAILSAGE_RETENTION_DAYS"]
        assert value == "90", name
        assert (
            SenderSettings(
                backend="aws", table_name="t", send_queue_url="q", retention_days=value
            ).retention_days
            == 90
        )


def test_retention_zero_keeps_records(build_app: Callable[..., tuple[Any, Any]]) -> None:
    from aws_cdk.assertions import Template

    # Given retention_days=0 on the command line (a string, as `-c` passes it)
    _, stack = build_app({"retention_days": "0"})
    # Then no function is told a retention: records are kept until deleted
    functions = Template.from_stack(stack).find_resources("AWS::Lambda::Function")
    assert all(
        "MAILSAGE_RETENTION_DAYS" not in f["Properties"]["Environment"]["Variables"]
        for f in functions.values()
    )


def test_the_table_expires_items_by_the_adapters_ttl_attribute(synthesized: Synthesized) -> None:
    from mailsage.adapters.aws.table import TTL_ATTRIBUTE

    (table,) = synthesized.resources("AWS::DynamoDB::Table").values()
    assert table["Properties"]["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}


# --- re-attaching retained resources -----------------------------------------------------------


def test_a_reattached_stack_creates_no_table_and_no_secret(reattached: Synthesized) -> None:
    assert reattached.resources("AWS::DynamoDB::Table") == {}
    assert reattached.resources("AWS::SecretsManager::Secret") == {}


def test_reattached_resources_reach_the_functions_by_name(
    reattached: Synthesized, configured: Synthesized
) -> None:
    # Then every function that had the created table now has the retained one, by its name
    for name in FUNCTION_NAMES:
        assert environment(reattached, name)["MAILSAGE_TABLE_NAME"] == TABLE
        assert set(environment(reattached, name)) == set(environment(configured, name)), name
    for name in ("api", "sender"):
        assert environment(reattached, name)["MAILSAGE_SIGNING_SECRET_NAME"] == SECRET


def test_reattached_resources_get_the_same_grants(reattached: Synthesized) -> None:
    for name in FUNCTION_NAMES:
        (statement,) = statements_with(function_statements(reattached, name), "dynamodb:PutItem")
        resources = json.dumps(statement["Resource"])
        assert f"table/{TABLE}" in resources and f"table/{TABLE}/index/*" in resources, name
        assert "dynamodb:DeleteTable" not in json.dumps(function_statements(reattached, name))
    # The secret: the api verifies and the sender signs with the retained key; nobody else reads it
    for name in ("api", "sender"):
        assert any(
            f"secret:{SECRET}-??????" in json.dumps(r)
            for r in secret_resources(function_statements(reattached, name))
        )
    for name in ("ingest", "events", "webhooks"):
        assert secret_resources(function_statements(reattached, name)) == []


def test_index_grants_cover_the_adapters_index(reattached: Synthesized) -> None:
    assert GSI1_NAME == "gsi1"  # the name the re-attached table's index must have (infra/README.md)
    (statement,) = statements_with(function_statements(reattached, "api"), "dynamodb:Query")
    assert any(json.dumps(r).endswith(f':table/{TABLE}/index/*"]]}}') for r in statement["Resource"])


def test_a_reattached_stack_passes_cdk_nag(build_app: Callable[..., tuple[Any, Any]]) -> None:
    acknowledged = synthesize_with_nag(build_app, REATTACHED)
    assert (
        f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:dynamodb:<AWS::Region>:<AWS::AccountId>:table/{TABLE}/index/*]"
        in acknowledged
    )


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"existing_table_name": "a b"}, "existing_table_name"),
        (
            {"existing_signing_secret_name": "arn:aws:secretsmanager:eu-west-1:1:secret:x"},
            "existing_signing_secret_name",
        ),
        ({"retention_days": "-1"}, "retention_days"),
        ({"retention_days": 3651}, "retention_days"),
    ],
)
def test_bad_stage_and_data_context_fails_clearly(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MailSageConfig.from_context({**cdk_json_context(), **context}.get)


# --- make deploy ---------------------------------------------------------------------------------


def deploy_recipe(cdk_args: str) -> str:
    """What `make deploy` would run, printed by make's dry run (nothing is executed)."""
    result = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "-o",
            "build",
            "-o",
            "node_modules/.package-lock.json",
            "deploy",
            f"CDK_ARGS={cdk_args}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_deploy_warns_that_dev_data_goes_with_the_stack() -> None:
    warning = "deleted with the stack"
    assert warning in deploy_recipe("")
    assert warning in deploy_recipe("-c stage=dev")
    assert warning not in deploy_recipe("-c stage=prod")
    assert warning in (ROOT / "infra" / "README.md").read_text()


def test_cdk_json_documents_the_new_keys() -> None:
    context = json.loads(Path(ROOT / "cdk.json").read_text())["context"]
    assert context["retention_days"] == DEFAULT_RETENTION_DAYS
    assert context["existing_table_name"] is None and context["existing_signing_secret_name"] is None

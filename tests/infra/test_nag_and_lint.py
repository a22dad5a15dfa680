"""cdk-nag's AwsSolutions pack and cfn-lint over the synthesized template.

With the cdk-nag plugin, synthesis raises on any finding that is not acknowledged; every
acknowledgment must carry a specific reason, and the set of acknowledged rules is pinned here so
a new one is a reviewed change.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import CONFIGURED, Synthesized

ACKNOWLEDGED_RULES_METADATA = "aws:cdk:acknowledged-rules"
# Every acknowledgment the stack may carry (logical ids in granular IAM5 findings elided as <…>).
EXPECTED_ACKNOWLEDGMENTS = {
    "AwsSolutions-L1",
    "AwsSolutions-IAM5[Resource::*]",
    # the API Gateway account's CloudWatch role: the AWS managed policy made for it
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
    "AwsSolutions-IAM5[Resource::<….Arn>/index/*]",
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/<…>/*]",
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ses:<AWS::Region>:<AWS::AccountId>:identity/*]",
    "AwsSolutions-APIG2",
    "AwsSolutions-APIG3",
    "AwsSolutions-APIG4",
    "AwsSolutions-APIG6",
    "AwsSolutions-COG4",
    "AwsSolutions-SQS3",  # the scheduler's dead-letter queue is referenced by schedules, not a redrive policy
    "AwsSolutions-SMG4",  # the URL signing key is not rotated: links in delivered mail must keep working
}
VAGUE_REASONS = re.compile(r"^(todo|tbd|n/?a|none|ok|fine|needed|required|lorem.*|suppress(ed)?)\.?$", re.I)
# cfn-lint 1.x has no `python -m cfnlint`; call its console entry point with this interpreter.
CFN_LINT = [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())"]
LOGICAL_ID = re.compile(r"<(?!AWS::)[A-Za-z0-9]+(?=[.>])")


def synthesize_with_nag(
    build_app: Callable[..., tuple[Any, Any]], overrides: dict[str, Any]
) -> dict[str, str]:
    """Synthesize with AwsSolutionsChecks; return the acknowledged rules {rule: reason}."""
    app, stack = build_app(overrides, nag=True)
    try:
        assembly = app.synth()
    except Exception as exc:  # the plugin reports through a validation error; show the findings
        report = Path(app.outdir) / "validation-report.json"
        findings = report.read_text() if report.exists() else ""
        pytest.fail(f"cdk-nag findings without acknowledgment: {exc}\n{findings[:6000]}")
    # Read the stack's metadata from the cloud assembly files (jsii cannot marshal every entry).
    directory = Path(assembly.directory)
    artifact = json.loads((directory / "manifest.json").read_text())["artifacts"][stack.artifact_id]
    metadata = dict(artifact.get("metadata", {}))
    if "additionalMetadataFile" in artifact:
        metadata.update(json.loads((directory / artifact["additionalMetadataFile"]).read_text()))
    acknowledged: dict[str, str] = {}
    for entries in metadata.values():
        for entry in entries:
            if entry["type"] == ACKNOWLEDGED_RULES_METADATA:
                for rule, reason in entry["data"].items():
                    acknowledged[rule.removeprefix("Annotation::")] = reason
    return acknowledged


@pytest.fixture(scope="module")
def acknowledged_default(build_app: Callable[..., tuple[Any, Any]]) -> dict[str, str]:
    return synthesize_with_nag(build_app, {})


def test_aws_solutions_checks_pass_with_the_defaults(acknowledged_default: dict[str, str]) -> None:
    assert acknowledged_default  # synthesis with the plugin succeeded


def test_aws_solutions_checks_pass_with_every_feature_on(build_app: Callable[..., tuple[Any, Any]]) -> None:
    acknowledged = synthesize_with_nag(build_app, CONFIGURED)
    # named identities: the sender is scoped to them, so no identity wildcard is acknowledged
    assert not [r for r in acknowledged if ":identity/*" in r]


def test_acknowledged_rules_are_the_reviewed_set(acknowledged_default: dict[str, str]) -> None:
    rules = {LOGICAL_ID.sub("<…", rule) for rule in acknowledged_default}
    assert rules == EXPECTED_ACKNOWLEDGMENTS


def test_every_acknowledgment_states_a_specific_reason(acknowledged_default: dict[str, str]) -> None:
    for rule, reason in acknowledged_default.items():
        assert len(reason) >= 60 and not VAGUE_REASONS.match(reason.strip()), (rule, reason)


def test_cfn_lint_reports_no_errors(synthesized: Synthesized, configured: Synthesized) -> None:
    for template in (synthesized.path, configured.path):
        # Template path first: --ignore-checks takes several values. W3005 (redundant DependsOn) is
        # how CDK writes dependencies.
        result = subprocess.run(
            [*CFN_LINT, str(template), "--ignore-checks", "W3005"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        # exit code bits: 2 errors, 4 warnings, 8 informational; 1 means cfn-lint itself failed
        assert result.returncode & (1 | 2) == 0, f"{template.name}:\n{result.stdout}\n{result.stderr}"
        assert json.loads(template.read_text())["Resources"]

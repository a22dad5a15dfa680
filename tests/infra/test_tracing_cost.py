"""What X-Ray records: the API stage's own sampling rule, PassThrough functions, and a context key
that sets the rate or turns tracing off (infra/constructs/tracing.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from bench import prices
from infra.config import ConfigError, MailSageConfig
from infra.constructs.tracing import RULE_NAME_MAX, rule_name
from tests.infra.conftest import ROOT, Synthesized, cdk_json_context

XRAY_WRITES = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}

# Runs the api handler as Lambda does (LAMBDA_TASK_ROOT, the invocation's _X_AMZN_TRACE_ID) in a
# process of its own (the X-Ray SDK's configuration is process-wide) and prints what would have
# reached X-Ray: the emitter is replaced, so nothing is sent.
LAMBDA_PROBE = """
import json, sys
from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter
emitted = []
UDPEmitter.send_entity = lambda self, entity: emitted.append(entity.name)
from mailsage.local.functions import LocalContext, load_handler
handler = load_handler("api")
reply = handler.lambda_handler(json.load(open(sys.argv[1])), LocalContext("mailsage-api"))
print(json.dumps({"status": reply["statusCode"], "emitted": emitted, "disabled": handler.tracer.disabled}))
"""
TRACE_ID = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled="


def the_rule(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (rule,) = resources.values()
    return dict(rule["Properties"]["SamplingRule"])


def functions(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["Properties"] for r in data["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]


def policy_actions(data: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for resource in data["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy":
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                found = statement["Action"]
                actions.update([found] if isinstance(found, str) else found)
    return actions


@pytest.fixture(scope="module")
def untraced(build_app: Callable[..., tuple[Any, Any]]) -> dict[str, Any]:
    """The default stack with `trace_sample_rate` 0, checked by cdk-nag as it synthesizes."""
    _, stack = build_app({"trace_sample_rate": 0}, nag=True)
    return dict(Template.from_stack(stack).to_json())


def test_the_api_stage_samples_by_a_rule_at_the_configured_rate_with_no_reservoir(
    synthesized: Synthesized,
) -> None:
    # Given the default stack
    # When its sampling rule is read
    rule = the_rule(synthesized.resources("AWS::XRay::SamplingRule"))
    # Then it records cdk.json's share of requests (the rate the cost bench prices) and nothing more:
    # a reservoir would trace every request below its rate per second
    assert rule["FixedRate"] == cdk_json_context()["trace_sample_rate"] == prices.TRACE_SAMPLE_RATE == 0.01
    assert rule["ReservoirSize"] == 0
    assert 1 <= rule["Priority"] <= 9999
    assert rule["Version"] == 1


def test_the_rule_matches_this_stacks_api_stage_only(synthesized: Synthesized) -> None:
    # Given the default stack's REST API, its stage and its sampling rule
    ((api),) = synthesized.resources("AWS::ApiGateway::RestApi").values()
    ((stage),) = synthesized.resources("AWS::ApiGateway::Stage").values()
    rule = the_rule(synthesized.resources("AWS::XRay::SamplingRule"))
    # Then it matches the service API Gateway reports for that stage, `{api name}/{stage name}`,
    # of type API Gateway stage, on every host, method and path
    assert rule["ServiceName"] == f"{api['Properties']['Name']}/{stage['Properties']['StageName']}"
    assert rule["ServiceName"] == "MailSage-dev/dev"
    assert rule["ServiceType"] == "AWS::ApiGateway::Stage"
    assert (rule["Host"], rule["HTTPMethod"], rule["URLPath"], rule["ResourceARN"]) == ("*", "*", "*", "*")
    # and the stage sends its requests to X-Ray for that decision
    assert stage["Properties"]["TracingEnabled"] is True


def test_each_stage_has_its_own_rule_name(synthesized: Synthesized, configured: Synthesized) -> None:
    # Given the dev and the prod stack (rule names are unique per account and region)
    names = [the_rule(s.resources("AWS::XRay::SamplingRule"))["RuleName"] for s in (synthesized, configured)]
    # Then each is named after its stack, within X-Ray's limit
    assert names == ["MailSage-dev", "MailSage-prod"]
    assert all(len(name) <= RULE_NAME_MAX for name in names)


def test_a_long_stack_name_is_shortened_to_a_distinct_rule_name() -> None:
    # Given two stack names over X-Ray's 32 characters that share their first 32
    first, second = "MailSage-" + "a" * 30 + "-one", "MailSage-" + "a" * 30 + "-two"
    # When named
    names = {rule_name(first), rule_name(second)}
    # Then both fit and stay apart
    assert len(names) == 2
    assert all(len(name) == RULE_NAME_MAX for name in names)


def test_every_function_follows_its_callers_sampling_decision(synthesized: Synthesized) -> None:
    # Given every function of the default stack
    props = functions(synthesized.data)
    # Then none samples on its own (Active would apply Lambda's fixed 1/s + 5% rule per function)
    assert len(props) == 5
    assert all(p["TracingConfig"] == {"Mode": "PassThrough"} for p in props)
    # and the roles may still write the segments of the traces they are handed
    assert policy_actions(synthesized.data) >= XRAY_WRITES
    assert not [p for p in props if "POWERTOOLS_TRACE_DISABLED" in p["Environment"]["Variables"]]


def test_a_rate_of_zero_turns_tracing_off_everywhere(untraced: dict[str, Any]) -> None:
    # Given the stack synthesized (with cdk-nag) at trace_sample_rate 0
    resources = untraced["Resources"].values()
    # Then there is no rule, the stage does not trace, the functions neither, and the Tracer knows
    assert not [r for r in resources if r["Type"] == "AWS::XRay::SamplingRule"]
    ((stage),) = [r["Properties"] for r in resources if r["Type"] == "AWS::ApiGateway::Stage"]
    assert not stage.get("TracingEnabled", False)
    for props in functions(untraced):
        assert props.get("TracingConfig", {}).get("Mode") != "Active"
        assert props["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == "true"
    # and no role may write traces
    assert not XRAY_WRITES & policy_actions(untraced)


@pytest.mark.parametrize(
    ("value", "expected"), [(0.05, 0.05), ("0.2", 0.2), (1, 1.0), ("0", 0.0), (None, 0.01)]
)
def test_a_share_from_zero_to_one_is_accepted(value: Any, expected: float) -> None:
    config = MailSageConfig.from_context({"trace_sample_rate": value}.get)
    assert config.trace_sample_rate == expected


@pytest.mark.parametrize("value", [-0.01, 1.5, "5%", "nan", "inf", True, [0.1]])
def test_synthesis_refuses_a_rate_that_is_not_a_share(value: Any) -> None:
    with pytest.raises(ConfigError, match="trace_sample_rate"):
        MailSageConfig.from_context({"trace_sample_rate": value}.get)


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"_X_AMZN_TRACE_ID": TRACE_ID + "1"}, {"emitted": ["## lambda_handler"], "disabled": False}),
        ({"_X_AMZN_TRACE_ID": TRACE_ID + "0"}, {"emitted": [], "disabled": False}),
        ({"POWERTOOLS_TRACE_DISABLED": "true"}, {"emitted": [], "disabled": True}),
    ],
    ids=["sampled", "not-sampled", "tracing-off"],
)
def test_the_tracer_records_only_what_the_gateway_sampled(
    environment: dict[str, str], expected: dict[str, Any], tmp_path: Path
) -> None:
    # Given the api handler running as on Lambda, invoked with a sampled or unsampled trace
    # header (PassThrough hands it the gateway's decision), or with tracing turned off
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILSAGE_", "POWERTOOLS_", "_X_AMZN"))}
    env.update(
        {
            "PYTHONPATH": f"{ROOT / 'layers' / 'mailsage' / 'python'}{os.pathsep}{ROOT}",
            "MAILSAGE_DATA_DIR": str(tmp_path / "data"),
            "LAMBDA_TASK_ROOT": str(tmp_path),
            "AWS_LAMBDA_FUNCTION_NAME": "mailsage-api",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            **environment,
        }
    )
    # When it handles a request (one without a key: answered without any store)
    event = ROOT / "events" / "api_get_job.json"
    result = subprocess.run(
        [sys.executable, "-c", LAMBDA_PROBE, str(event)], env=env, capture_output=True, text=True, timeout=120
    )
    # Then it answers either way, and only a sampled invocation's subsegment reaches X-Ray
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"status": 401, **expected}

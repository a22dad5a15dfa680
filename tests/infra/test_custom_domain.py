"""A domain of the team's own and the public routes' own throttling, on synthesized templates.

With `custom_domain_name` and its certificate the REST API gets a REGIONAL TLS 1.2 domain mapped to
its stage (and an alias record when the hosted zone is given), and every link MailSage writes
names that domain. `/t` and `/u` (tracking, unsubscribe) are throttled apart from the stage.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from infra.config import ConfigError, MailSageConfig
from tests.infra.conftest import CONFIGURED, Synthesized, _synthesize, cdk_json_context
from tests.infra.test_nag_and_lint import CFN_LINT, synthesize_with_nag
from tests.infra.test_stack import environment, function_ids

CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
ZONE = "Z0123456789ABCDEFGHIJ"
DOMAIN = {
    **CONFIGURED,
    "custom_domain_name": "mail.example.com",
    "custom_domain_certificate_arn": CERTIFICATE,
    "custom_domain_hosted_zone_id": ZONE,
    "public_routes_rate_limit": 30,
    "public_routes_burst_limit": 60,
}
NO_ZONE = {**DOMAIN, "custom_domain_hosted_zone_id": None}
PUBLIC_PATHS = ("/~1t", "/~1t~1{proxy+}", "/~1u", "/~1u~1{proxy+}")


@pytest.fixture(scope="module")
def with_domain(
    build_app: Callable[..., tuple[Any, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Synthesized:
    return _synthesize(build_app, DOMAIN, tmp_path_factory.mktemp("template") / "domain.json")


def only(s: Synthesized, type_: str) -> tuple[str, dict[str, Any]]:
    resources = s.resources(type_)
    assert len(resources) == 1, (type_, list(resources))
    logical_id, resource = next(iter(resources.items()))
    return logical_id, resource["Properties"]


def method_settings(s: Synthesized) -> dict[str, dict[str, Any]]:
    _, stage = only(s, "AWS::ApiGateway::Stage")
    return {m["ResourcePath"]: m for m in stage["MethodSettings"]}


# --- the custom domain -----------------------------------------------------------------------


def test_domain_is_regional_tls12_and_mapped_to_the_stage(with_domain: Synthesized) -> None:
    domain_id, domain = only(with_domain, "AWS::ApiGateway::DomainName")
    assert domain["DomainName"] == "mail.example.com"
    assert domain["RegionalCertificateArn"] == CERTIFICATE
    assert domain["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert domain["SecurityPolicy"] == "TLS_1_2"
    rest_api_id, _ = only(with_domain, "AWS::ApiGateway::RestApi")
    stage_id, _ = only(with_domain, "AWS::ApiGateway::Stage")
    _, mapping = only(with_domain, "AWS::ApiGateway::BasePathMapping")
    assert mapping["DomainName"] == {"Ref": domain_id}
    assert mapping["RestApiId"] == {"Ref": rest_api_id}
    assert mapping["Stage"] == {"Ref": stage_id}
    assert "BasePath" not in mapping  # the root of the domain: links are https://<domain>/t/...


def test_alias_record_points_the_zone_at_the_domain(with_domain: Synthesized) -> None:
    domain_id, _ = only(with_domain, "AWS::ApiGateway::DomainName")
    _, record = only(with_domain, "AWS::Route53::RecordSet")
    assert record["HostedZoneId"] == ZONE
    assert record["Name"] == "mail.example.com."
    assert record["Type"] == "A"
    assert record["AliasTarget"] == {
        "DNSName": {"Fn::GetAtt": [domain_id, "RegionalDomainName"]},
        "HostedZoneId": {"Fn::GetAtt": [domain_id, "RegionalHostedZoneId"]},
    }


def test_without_a_zone_the_domain_is_made_but_no_record(
    build_app: Callable[..., tuple[Any, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    s = _synthesize(build_app, NO_ZONE, tmp_path_factory.mktemp("template") / "no-zone.json")
    only(s, "AWS::ApiGateway::DomainName")
    only(s, "AWS::ApiGateway::BasePathMapping")
    assert not s.resources("AWS::Route53::RecordSet")
    # the team points its own DNS at this name
    outputs = [k for k in s.data["Outputs"] if k.startswith("ApiCustomDomainTarget")]
    assert outputs


def test_api_and_sender_build_links_on_the_domain(with_domain: Synthesized) -> None:
    for name in ("api", "sender"):
        assert environment(with_domain, name)["MAILSAGE_PUBLIC_URL"] == "https://mail.example.com", name
    for name in set(function_ids(with_domain)) - {"api", "sender"}:
        assert "MAILSAGE_PUBLIC_URL" not in environment(with_domain, name), name


def test_without_a_domain_only_the_sender_knows_the_execute_api_url(synthesized: Synthesized) -> None:
    assert not synthesized.resources("AWS::ApiGateway::DomainName")
    assert not synthesized.resources("AWS::Route53::RecordSet")
    rest_api_id, _ = only(synthesized, "AWS::ApiGateway::RestApi")
    url = environment(synthesized, "sender")["MAILSAGE_PUBLIC_URL"]
    assert f'"{rest_api_id}"' in str(url).replace("'", '"')
    assert "MAILSAGE_PUBLIC_URL" not in environment(synthesized, "api")


def test_domain_passes_cdk_nag_and_cfn_lint(
    build_app: Callable[..., tuple[Any, Any]], with_domain: Synthesized
) -> None:
    acknowledged = synthesize_with_nag(build_app, DOMAIN)
    assert not [rule for rule in acknowledged if "APIG" in rule and rule.endswith(("1", "5"))]
    result = subprocess.run(
        [*CFN_LINT, str(with_domain.path), "--ignore-checks", "W3005"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode & (1 | 2) == 0, f"{result.stdout}\n{result.stderr}"


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"custom_domain_name": "mail.example.com"}, r"'custom_domain_certificate_arn' is required"),
        (
            {"custom_domain_name": "mail.example.com", "custom_domain_certificate_arn": "arn:aws:iam::1:x"},
            r"'custom_domain_certificate_arn': .* is not an ACM certificate ARN",
        ),
        ({"custom_domain_certificate_arn": CERTIFICATE}, r"'custom_domain_name' is required"),
        (
            {"custom_domain_name": "not a domain", "custom_domain_certificate_arn": CERTIFICATE},
            r"'custom_domain_name': .* is not a domain name",
        ),
        (
            {
                "custom_domain_name": "mail.example.com",
                "custom_domain_certificate_arn": CERTIFICATE,
                "custom_domain_hosted_zone_id": "example.com",
            },
            r"'custom_domain_hosted_zone_id': .* is not a Route 53 hosted zone id",
        ),
        ({"public_routes_rate_limit": 0}, r"'public_routes_rate_limit' must be between"),
        ({"public_routes_burst_limit": "lots"}, r"'public_routes_burst_limit' must be an integer"),
    ],
)
def test_bad_custom_domain_context_fails_in_one_line(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        MailSageConfig.from_context({**cdk_json_context(), **context}.get)
    assert "\n" not in str(raised.value)


def test_string_context_from_the_command_line_is_accepted() -> None:
    # `cdk synth -c key=value` passes strings: the same domain, lower-cased
    config = MailSageConfig.from_context(
        {
            **cdk_json_context(),
            "custom_domain_name": "Mail.Example.com",
            "custom_domain_certificate_arn": CERTIFICATE,
            "public_routes_rate_limit": "25",
        }.get
    )
    assert config.custom_domain is not None
    assert config.custom_domain.url == "https://mail.example.com"
    assert config.custom_domain.hosted_zone_id is None
    assert config.public_routes_rate_limit == 25


# --- the public routes' throttling --------------------------------------------------------------


def test_public_routes_have_their_own_stage_throttle(synthesized: Synthesized) -> None:
    settings = method_settings(synthesized)
    assert (settings["/*"]["ThrottlingRateLimit"], settings["/*"]["ThrottlingBurstLimit"]) == (50, 100)
    for path in PUBLIC_PATHS:
        assert (settings[path]["ThrottlingRateLimit"], settings[path]["ThrottlingBurstLimit"]) == (100, 200)
        assert settings[path]["HttpMethod"] == "*"
        assert settings[path]["MetricsEnabled"] is True


def test_public_route_limits_come_from_the_context(with_domain: Synthesized) -> None:
    settings = method_settings(with_domain)
    assert settings["/*"]["ThrottlingRateLimit"] == 200  # the configured stage limit, untouched
    for path in PUBLIC_PATHS:
        assert (settings[path]["ThrottlingRateLimit"], settings[path]["ThrottlingBurstLimit"]) == (30, 60)


def test_public_routes_proxy_to_the_same_function_as_every_other_path(synthesized: Synthesized) -> None:
    resources = synthesized.resources("AWS::ApiGateway::Resource")
    paths = {k: r["Properties"]["PathPart"] for k, r in resources.items()}
    parents = {k: r["Properties"]["ParentId"] for k, r in resources.items()}
    by_path: dict[str, str] = {}
    for logical_id, part in paths.items():
        parent = parents[logical_id]
        prefix = "" if "Fn::GetAtt" in parent else "/" + paths[parent["Ref"]]
        by_path[f"{prefix}/{part}"] = logical_id
    assert set(by_path) == {"/{proxy+}", "/t", "/t/{proxy+}", "/u", "/u/{proxy+}"}
    integrations = {}
    for method in synthesized.resources("AWS::ApiGateway::Method").values():
        props = method["Properties"]
        if props["HttpMethod"] == "ANY" and "Ref" in props["ResourceId"]:
            integrations[props["ResourceId"]["Ref"]] = props["Integration"]
    catch_all = integrations[by_path["/{proxy+}"]]
    assert catch_all["Type"] == "AWS_PROXY"
    for path in ("/t", "/t/{proxy+}", "/u", "/u/{proxy+}"):
        assert integrations[by_path[path]] == catch_all, path


def _evaluate(value: Any, region: str) -> Any:
    """The few intrinsics the certificate rule uses, as CloudFormation evaluates them."""
    if isinstance(value, dict):
        [(name, arg)] = value.items()
        if name == "Ref":
            return {"AWS::Region": region}[arg]
        if name == "Fn::Split":
            return _evaluate(arg[1], region).split(arg[0])
        if name == "Fn::Select":
            return _evaluate(arg[1], region)[int(arg[0])]
        if name == "Fn::Equals":
            return _evaluate(arg[0], region) == _evaluate(arg[1], region)
        raise AssertionError(f"unexpected intrinsic {name}")
    return value


def test_a_certificate_from_another_region_stops_the_deploy_before_anything_is_built(
    with_domain: Synthesized,
) -> None:
    """REGIONAL domains need the certificate in the stack's region; the stack is environment-
    agnostic, so a template rule checks it when the change set is made."""
    rule = with_domain.data["Rules"]["CertificateInStackRegion"]
    [assertion] = rule["Assertions"]
    assert "stack's region" in assertion["AssertDescription"]
    assert _evaluate(assertion["Assert"], "eu-west-1") is True  # CERTIFICATE is in eu-west-1
    assert _evaluate(assertion["Assert"], "us-east-1") is False


def test_without_a_domain_there_is_no_certificate_rule(synthesized: Synthesized) -> None:
    assert "CertificateInStackRegion" not in synthesized.data.get("Rules", {})

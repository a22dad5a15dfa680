"""The API edge on AWS: request bodies that fit Lambda's payload limit, an optional WAF web ACL, an
access log that explains failures, and metrics that stay apart per stage.

API Gateway puts the request body into the Lambda proxy event; as JSON-escaped text a body could
grow sixfold and exceed Lambda's 6 MB payload before MailSage's own 413 could answer. With binary
media type `*/*` it arrives base64-encoded (exactly 4/3), and the api function's limit is the
largest body whose event still fits (infra/proxy_payload.py).
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError, MailSageConfig
from infra.proxy_payload import LAMBDA_SYNC_PAYLOAD_BYTES, MAX_PROXY_BODY_BYTES
from mailsage.local.functions import LocalContext, load_handler
from tests.conftest import load_event
from tests.infra.conftest import CONFIGURED, Synthesized, _synthesize, cdk_json_context
from tests.infra.test_nag_and_lint import CFN_LINT, synthesize_with_nag
from tests.infra.test_stack import environment

WEB_ACL = (
    "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/mailsage-edge/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
)
GLOBAL_WEB_ACL = (
    "arn:aws:wafv2:us-east-1:123456789012:global/webacl/mailsage-cdn/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
)
EDGE = {**CONFIGURED, "web_acl_arn": WEB_ACL, "max_request_bytes": 1_000_000}
SEND = "/api/v1/emails/send"
SAMPLE_ACCOUNT = "6f1c2b7e-3f4a-4b8e-9c1d-2a3b4c5d6e7f"


@pytest.fixture(scope="module")
def with_web_acl(
    build_app: Callable[..., tuple[Any, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Synthesized:
    return _synthesize(build_app, EDGE, tmp_path_factory.mktemp("template") / "edge.json")


def only(s: Synthesized, type_: str) -> tuple[str, dict[str, Any]]:
    resources = s.resources(type_)
    assert len(resources) == 1, (type_, list(resources))
    logical_id, resource = next(iter(resources.items()))
    return logical_id, resource["Properties"]


# --- the body limit ----------------------------------------------------------------------------


def test_every_request_body_reaches_the_function_base64_encoded(synthesized: Synthesized) -> None:
    # */* also covers the open-tracking GIF the function returns base64-encoded
    _, rest_api = only(synthesized, "AWS::ApiGateway::RestApi")
    assert rest_api["BinaryMediaTypes"] == ["*/*"]


def test_cors_preflights_convert_the_binary_request_to_text(configured: Synthesized) -> None:
    # With */*, a MOCK integration cannot apply its request template to a binary payload (the
    # preflight would answer 500) unless it converts the payload to text first.
    preflights = [
        m["Properties"]
        for m in configured.resources("AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] == "OPTIONS"
    ]
    assert len(preflights) == 6  # /, /{proxy+}, /t, /t/{proxy+}, /u, /u/{proxy+}
    for method in preflights:
        integration = method["Integration"]
        assert integration["Type"] == "MOCK"
        assert integration["ContentHandling"] == "CONVERT_TO_TEXT"
        assert [r["ContentHandling"] for r in integration["IntegrationResponses"]] == ["CONVERT_TO_TEXT"]


def test_api_function_limit_is_the_largest_body_that_fits_by_default(synthesized: Synthesized) -> None:
    assert environment(synthesized, "api")["MAILSAGE_MAX_REQUEST_BYTES"] == str(MAX_PROXY_BODY_BYTES)
    assert MAX_PROXY_BODY_BYTES == 4_620_288
    assert "MAILSAGE_MAX_REQUEST_BYTES" not in environment(synthesized, "sender")


def test_a_lower_limit_from_the_context_reaches_the_api_function(with_web_acl: Synthesized) -> None:
    assert environment(with_web_acl, "api")["MAILSAGE_MAX_REQUEST_BYTES"] == "1000000"


@pytest.mark.parametrize("value", [MAX_PROXY_BODY_BYTES + 1, str(6 * 1024 * 1024)])
def test_a_limit_above_what_fits_is_refused_at_synth(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"'max_request_bytes' .* is above 4620288") as raised:
        MailSageConfig.from_context({**cdk_json_context(), "max_request_bytes": value}.get)
    assert "\n" not in str(raised.value)


def test_the_largest_limit_and_a_command_line_string_are_accepted() -> None:
    at_bound = MailSageConfig.from_context(
        {**cdk_json_context(), "max_request_bytes": MAX_PROXY_BODY_BYTES}.get
    )
    assert at_bound.max_request_bytes == MAX_PROXY_BODY_BYTES
    lowered = MailSageConfig.from_context({**cdk_json_context(), "max_request_bytes": "65536"}.get)
    assert lowered.max_request_bytes == 65536


HEADERS_LIMIT = 10_240  # REST API: all header names, values, separators and line ends together
URL_LIMIT = 10_240  # REST API: characters of a regional API's URL


def gateway_event(body: bytes, *, binary: bool) -> dict[str, Any]:
    """A REST proxy event as API Gateway builds it for a worst-case request: headers and a URL as
    large as the gateway allows, made of characters JSON must escape, in every place the event
    repeats them (headers and multiValueHeaders; path, requestContext.path and the proxy path
    parameter); the body base64-encoded (`binary`) or as text."""
    event = load_event("api_send.json")
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + "k" * 64}
    used = sum(len(k) + len(v) + 4 for k, v in headers.items())  # "name: value\r\n"
    for i in range(1000):
        name, room = f"X-Pad-{i:03d}", HEADERS_LIMIT - used - 14
        if room <= 0:
            break
        headers[name] = '"' * min(room, 200)  # each one doubles when escaped
        used += len(name) + len(headers[name]) + 4
    assert HEADERS_LIMIT - 14 <= used <= HEADERS_LIMIT
    path = "/" + '"' * (URL_LIMIT - 1)
    event.update(
        path=path,
        resource="/{proxy+}",
        pathParameters={"proxy": path.lstrip("/")},
        headers=headers,
        multiValueHeaders={k: [v] for k, v in headers.items()},
    )
    event["requestContext"]["path"] = f"/prod{path}"
    event["body"] = base64.b64encode(body).decode() if binary else body.decode()
    event["isBase64Encoded"] = binary
    return event


def test_a_worst_case_body_at_the_limit_fits_lambdas_payload() -> None:
    # Given a body of control characters only (six bytes each once JSON-escaped), at the limit
    body = bytes(range(32)) * (MAX_PROXY_BODY_BYTES // 32) + b"\x00" * (MAX_PROXY_BODY_BYTES % 32)
    assert len(body) == MAX_PROXY_BODY_BYTES
    # When API Gateway hands it over base64-encoded, with the largest envelope it allows
    payload = json.dumps(gateway_event(body, binary=True)).encode()
    # Then the event fits Lambda's synchronous payload
    assert len(payload) <= LAMBDA_SYNC_PAYLOAD_BYTES
    # while the same body as escaped text would not have come near it
    assert len(json.dumps(gateway_event(body, binary=False)).encode()) > 3 * LAMBDA_SYNC_PAYLOAD_BYTES


@pytest.fixture(params=["local", "aws"])
def edge_api(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, str]]:
    """(api handler, API key) cold-started with the AWS limit, on SQLite or on DynamoDB/SQS (moto)."""
    from mailsage.domain.auth import AuthService

    monkeypatch.setenv("MAILSAGE_MAX_REQUEST_BYTES", str(MAX_PROXY_BODY_BYTES))
    for name in ("MAILSAGE_SMTP_URL", "MAILSAGE_DEV_API_KEY", "MAILSAGE_DEV_ACCOUNT_ID"):
        monkeypatch.delenv(name, raising=False)
    account_id = SAMPLE_ACCOUNT  # the v2 sample's path names it
    if request.param == "local":
        from mailsage.settings import CommonSettings
        from mailsage.wiring import backends

        monkeypatch.setenv("MAILSAGE_DATA_DIR", str(tmp_path / "data"))
        key = AuthService(backends(CommonSettings()).store).create_key(account_id)
        yield load_handler("api"), key
        return
    import boto3

    from mailsage.adapters.aws.dynamodb import DynamoStore
    from tests.contract.aws_store import dynamodb_table
    from tests.moto_env import REGION, use_aws_backend

    suffix = uuid.uuid4().hex[:12]  # names of their own: the wiring caches backends per settings
    with dynamodb_table(f"mailsage-{suffix}") as table:
        send_url = boto3.client("sqs", region_name=REGION).create_queue(QueueName=f"send-{suffix}")[
            "QueueUrl"
        ]
        use_aws_backend(monkeypatch, tmp_path / "data", table, send_url)
        key = AuthService(DynamoStore(table)).create_key(account_id)
        yield load_handler("api"), key


def padded_send(size: int) -> bytes:
    """A valid send request padded with JSON whitespace to exactly `size` bytes."""
    request = json.dumps(
        {"recipient": {"email": "user@example.com"}, "subject": "Hello", "body": "A message."}
    ).encode()
    return request + b" " * (size - len(request))


def post(handler: Any, key: str, path: str, body: bytes) -> tuple[int, Any]:
    from tests.integration.test_api_errors import raw_request

    status, _, reply = raw_request(handler, "POST", path, body, key)
    return status, reply


def test_a_base64_body_at_the_limit_is_accepted(edge_api: tuple[Any, str]) -> None:
    # Given a body of exactly MAILSAGE_MAX_REQUEST_BYTES, base64-encoded (a third longer) as on AWS
    handler, key = edge_api
    # When it is posted
    status, reply = post(handler, key, SEND, padded_send(MAX_PROXY_BODY_BYTES))
    # Then the decoded size is what counts: the send is accepted
    assert status == 202, reply


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("api_send.json", 202),
        ("api_batch.json", 202),
        ("api_v2_create_message.json", 202),
        ("api_create_template.json", 201),
        ("api_preview_template.json", 404),  # no such template: the body was read, not refused
        ("api_control_job.json", 404),
    ],
)
def test_every_route_that_reads_a_body_decodes_base64(
    edge_api: tuple[Any, str], sample: str, expected: int
) -> None:
    # Given a sample request whose body arrives base64-encoded, as every body does on AWS
    handler, key = edge_api
    event = load_event(sample)
    event["headers"] = {k: v for k, v in event["headers"].items() if k != "Idempotency-Key"}
    event["headers"]["Authorization"] = f"Bearer {key}"
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    # When the api handler gets it
    result = handler.lambda_handler(event, LocalContext("mailsage-api"))
    # Then the route answers as it does to the text body (a body left encoded would be a 400)
    assert result["statusCode"] == expected, result["body"]


def test_one_byte_above_the_limit_is_the_surfaces_own_refusal(edge_api: tuple[Any, str]) -> None:
    handler, key = edge_api
    body = padded_send(MAX_PROXY_BODY_BYTES + 1)
    # v1: 413 payload_too_large, naming the limit
    status, reply = post(handler, key, SEND, body)
    assert status == 413, reply
    assert reply["error"]["code"] == "payload_too_large"
    assert str(MAX_PROXY_BODY_BYTES) in reply["error"]["message"]
    # v2: the contract's 400 with its message
    status, reply = post(handler, key, f"/v2/accounts/{uuid.uuid4()}/messages", body)
    assert status == 400 and set(reply) == {"message"}, reply
    assert str(MAX_PROXY_BODY_BYTES) in reply["message"]


# --- the WAF web ACL ---------------------------------------------------------------------------


def test_web_acl_is_attached_to_the_stage(with_web_acl: Synthesized) -> None:
    stage_id, _ = only(with_web_acl, "AWS::ApiGateway::Stage")
    rest_api_id, _ = only(with_web_acl, "AWS::ApiGateway::RestApi")
    _, association = only(with_web_acl, "AWS::WAFv2::WebACLAssociation")
    assert association["WebACLArn"] == WEB_ACL
    arn = json.dumps(association["ResourceArn"])
    assert ":apigateway:" in arn and "::/restapis/" in arn and "/stages/" in arn
    assert {"Ref": rest_api_id} in association["ResourceArn"]["Fn::Join"][1]
    assert {"Ref": stage_id} in association["ResourceArn"]["Fn::Join"][1]


def test_without_a_web_acl_nothing_is_attached(synthesized: Synthesized) -> None:
    assert not synthesized.resources("AWS::WAFv2::WebACLAssociation")


def test_with_a_web_acl_the_waf_acknowledgment_goes_away(
    build_app: Callable[..., tuple[Any, Any]], with_web_acl: Synthesized
) -> None:
    assert "AwsSolutions-APIG3" not in synthesize_with_nag(build_app, EDGE)
    result = subprocess.run(
        [*CFN_LINT, str(with_web_acl.path), "--ignore-checks", "W3005"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode & (1 | 2) == 0, f"{result.stdout}\n{result.stderr}"


def test_without_a_web_acl_the_waf_acknowledgment_stays(build_app: Callable[..., tuple[Any, Any]]) -> None:
    acknowledged = synthesize_with_nag(build_app, CONFIGURED)
    assert "web_acl_arn" in acknowledged["AwsSolutions-APIG3"]


@pytest.mark.parametrize(
    ("arn", "message"),
    [
        (GLOBAL_WEB_ACL, r"CLOUDFRONT-scope web ACL, which cannot be attached to a regional API stage"),
        ("arn:aws:waf-regional:eu-west-1:123456789012:webacl/abc", r"is not a WAF web ACL ARN"),
        ("arn:aws:wafv2:eu-west-1:123456789012:regional/ipset/x/abc", r"is not a WAF web ACL ARN"),
        ("mailsage-edge", r"is not a WAF web ACL ARN"),
    ],
)
def test_a_web_acl_that_cannot_attach_is_refused(arn: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        MailSageConfig.from_context({**cdk_json_context(), "web_acl_arn": arn}.get)
    assert "\n" not in str(raised.value)


# --- the access log and the metrics' dimension --------------------------------------------------


def test_access_log_carries_the_integration_fields_and_request_ids(synthesized: Synthesized) -> None:
    _, stage = only(synthesized, "AWS::ApiGateway::Stage")
    fields = json.loads(stage["AccessLogSetting"]["Format"])
    assert {
        "requestId": "$context.requestId",
        "extendedRequestId": "$context.extendedRequestId",
        "integrationErrorMessage": "$context.integrationErrorMessage",
        "integrationLatency": "$context.integrationLatency",
        "integrationStatus": "$context.integrationStatus",
        "integration.requestId": "$context.integration.requestId",  # the Lambda invocation's id
        "integration.status": "$context.integration.status",
        "integration.latency": "$context.integration.latency",
        "status": "$context.status",
    }.items() <= fields.items()
    # every value is a quoted string: API Gateway writes "-" where a request has no value
    assert all(isinstance(v, str) and v.startswith("$context.") for v in fields.values())


def test_each_stage_names_its_api_so_metrics_stay_apart(
    synthesized: Synthesized, configured: Synthesized
) -> None:
    (dev_id, dev), (prod_id, prod) = (
        only(synthesized, "AWS::ApiGateway::RestApi"),
        only(configured, "AWS::ApiGateway::RestApi"),
    )
    assert (dev["Name"], prod["Name"]) == ("MailSage-dev", "MailSage-prod")
    assert dev_id == prod_id  # the name is an in-place update: the API is not replaced
    for s, name in ((synthesized, "MailSage-dev"), (configured, "MailSage-prod")):
        api_dimensions = [
            d["Value"]
            for alarm in s.resources("AWS::CloudWatch::Alarm").values()
            for d in alarm["Properties"].get("Dimensions", [])
            if d["Name"] == "ApiName"
        ]
        assert api_dimensions and set(api_dimensions) == {name}


def test_an_oversized_body_is_refused_before_it_is_parsed() -> None:
    from mailsage.api.body import parse_json

    # Given a body one byte above the limit that parsing would fail on for another reason (depth)
    text = "[" * 2049
    # Then the size refuses it first, and unparsed
    with pytest.raises(json.JSONDecodeError, match="larger than 2048 bytes"):
        parse_json(text, max_bytes=2048)
    with pytest.raises(json.JSONDecodeError, match="larger than 2048 bytes"):
        parse_json('"' + "é" * 1024 + '"', max_bytes=2048)  # 1,026 characters, 2,050 bytes
    with pytest.raises(json.JSONDecodeError, match="nested more than"):
        parse_json(text, max_bytes=4096)

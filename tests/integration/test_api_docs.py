"""`GET /openapi.json` and `GET /docs` through the real api handler (API Gateway REST events): the
document is valid OpenAPI, every operation has a summary and examples that fit its schemas, and the
explorer page loads only files this API serves, without an API key."""

from __future__ import annotations

import gzip
import importlib
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel

from mailsage.api.app import create_app, openapi_json
from mailsage.api.examples import EXAMPLES
from mailsage.local.functions import load_handler
from mailsage.settings import ApiSettings
from tests.conftest import ApiClient, Reply
from tests.unit.test_openapi import COMMITTED

METHODS = {"get", "put", "post", "delete", "patch"}
# Where the request and reply models live (the document names each schema after its class).
MODEL_MODULES = [
    importlib.import_module(f"mailsage.api.{name}")
    for name in ("v1.models", "v1.webhook_models", "v1.campaigns", "v2.models", "v2.webhooks")
]


@pytest.fixture(params=["local", "aws"])
def anonymous(
    request: pytest.FixtureRequest, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ApiClient]:
    """A caller without a key, to the api handler on SQLite or on DynamoDB/SQS (moto)."""
    if request.param == "local":
        yield ApiClient(load_handler("api"), None)
        return
    import boto3

    from tests.contract.aws_store import dynamodb_table
    from tests.moto_env import REGION, use_aws_backend

    suffix = uuid.uuid4().hex[:12]  # names of their own: the wiring caches backends per settings
    with dynamodb_table(f"mailsage-{suffix}") as table:
        queue = boto3.client("sqs", region_name=REGION).create_queue(QueueName=f"send-{suffix}")
        use_aws_backend(monkeypatch, data_dir, table, queue["QueueUrl"])
        yield ApiClient(load_handler("api"), None)


def get_raw(client: ApiClient, path: str, **headers: str) -> Reply:
    reply = client.get(path, headers=headers)
    if reply.headers.get("content-encoding") == "gzip":
        text = gzip.decompress(reply.body).decode()
        reply.body = (
            json.loads(text) if reply.headers["content-type"].startswith("application/json") else text
        )
    return reply


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, ops in document["paths"].items()
        for method, op in ops.items()
        if method in METHODS
    ]


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return document["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def examples_of(document: dict[str, Any], media: dict[str, Any]) -> list[Any]:
    examples = document["components"].get("examples", {})
    return [
        examples[e["$ref"].rsplit("/", 1)[-1]]["value"] if "$ref" in e else e["value"]
        for e in media.get("examples", {}).values()
    ]


def check(document: dict[str, Any], media: dict[str, Any], where: str) -> None:
    examples = examples_of(document, media)
    assert examples, f"{where}: no example"
    schema = {**media["schema"], "components": document["components"]}
    for example in examples:
        jsonschema.validate(example, schema, cls=jsonschema.Draft202012Validator)


def test_the_served_document_is_valid_openapi_and_the_committed_one(anonymous: ApiClient) -> None:
    # Given no API key
    # When the document is asked for
    reply = get_raw(anonymous, "/openapi.json")
    # Then it is served as JSON, equal to the committed document, and valid OpenAPI
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("application/json")
    document = reply.body
    assert document == json.loads(COMMITTED.read_text())
    validate(document)


def test_every_operation_has_a_summary_and_examples_that_fit_its_schemas() -> None:
    # Given the generated document
    document = json.loads(openapi_json(create_app(ApiSettings())))
    found = operations(document)
    assert len(found) >= 30
    for method, path, op in found:
        where = f"{method.upper()} {path}"
        # Then each has its own summary, not the generated "METHOD /path"
        assert op.get("summary") and op["summary"] != where, where
        # and an example request body and reply, each valid against its schema
        if "requestBody" in op:
            check(document, op["requestBody"]["content"]["application/json"], f"{where} request")
        success = next(v for k, v in op["responses"].items() if k.startswith("2"))
        if success.get("content"):
            check(document, success["content"]["application/json"], f"{where} reply")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_is_accepted_by_its_model(name: str) -> None:
    # Given the pydantic model the routes validate with (or build replies from)
    found = (getattr(m, name, None) for m in MODEL_MODULES)
    model = next(c for c in found if isinstance(c, type) and issubclass(c, BaseModel))
    # Then the example is one it accepts, and says nothing the model would drop
    parsed = model.model_validate(EXAMPLES[name])
    assert json.loads(parsed.model_dump_json(by_alias=True)).keys() >= EXAMPLES[name].keys()


def test_the_explorer_loads_only_files_this_api_serves(anonymous: ApiClient) -> None:
    # Given no API key
    # When the explorer page is asked for
    page = get_raw(anonymous, "/docs")
    # Then it is HTML whose scripts, styles and document are all local paths
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    found = re.findall(r'(?:src|href|data-openapi-url)="([^"]+)"', page.body)
    assert [link for link in found if not link.startswith("/")] == ["data:,"]  # no favicon request
    links = [link for link in found if link.startswith("/")]
    assert sorted(links) == [
        "/docs/swagger-init.js",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-ui.css",
        "/openapi.json",
    ]
    assert "//" not in page.body.replace("<!DOCTYPE", "")
    # and each of them is served with its content type
    types = {".js": "text/javascript", ".css": "text/css", ".json": "application/json"}
    for link in links:
        reply = get_raw(anonymous, link, **{"Accept-Encoding": "gzip"})
        assert reply.status == 200, link
        assert reply.headers["content-type"].startswith(types[link[link.rfind(".") :]]), link
        assert reply.body, link
    bundle = get_raw(anonymous, "/docs/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.body


def test_behind_a_stage_the_links_and_server_carry_its_prefix(anonymous: ApiClient) -> None:
    # Given a request through an execute-api URL (`/prod/docs`), whose routed path is `/docs`
    event_path = "/prod"
    page = stage_request(anonymous, "/docs", event_path)
    # Then the page's links and the document's server keep the stage
    assert 'src="/prod/docs/swagger-ui-bundle.js"' in page.body
    assert 'data-openapi-url="/prod/openapi.json"' in page.body
    document = stage_request(anonymous, "/openapi.json", event_path).body
    assert document["servers"] == [{"url": "/prod"}]


def stage_request(client: ApiClient, path: str, stage_prefix: str) -> Reply:
    original = client.handler.lambda_handler

    def with_stage(event: dict[str, Any], context: Any) -> dict[str, Any]:
        event["requestContext"]["path"] = stage_prefix + event["path"]
        return original(event, context)  # type: ignore[no-any-return]

    client.handler = type("Staged", (), {"lambda_handler": staticmethod(with_stage)})()
    try:
        return client.get(path)
    finally:
        client.handler = type("Plain", (), {"lambda_handler": staticmethod(original)})()


def test_other_paths_still_need_a_key(anonymous: ApiClient) -> None:
    # Given no API key, a path next to the explorer's files is not exempt
    assert anonymous.get("/docs/secrets.js").status == 401
    assert anonymous.get("/api/v1/templates").status == 401


def test_a_trailing_slash_reaches_the_page(anonymous: ApiClient) -> None:
    # Given a person typing /docs/, and no API key
    page = get_raw(anonymous, "/docs/")
    # Then they get the same page, whose links do not depend on the slash
    assert page.status == 200
    assert 'src="/docs/swagger-ui-bundle.js"' in page.body

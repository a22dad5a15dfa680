"""Property-based fuzzing of the whole HTTP API from its own OpenAPI document (schemathesis): every
operation of functions/api/openapi.json, with data that fits the document and data that does not,
sent with a valid key to the real api handler in-process (a WSGI shim makes each request the API
Gateway event `mailsage serve` would make of it). Every reply must be documented: no server error,
a documented status code and content type, a body matching its schema (success and error alike),
and input the document rules out must be refused with a 4xx.

Bounded and reproducible: hypothesis is derandomized (the same cases every run) with a fixed number
of examples per operation and no example database."""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import ChecksConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from mailsage.domain.auth import AuthService
from mailsage.local.events import api_gateway_event
from mailsage.local.functions import LocalContext, load_handler
from mailsage.settings import CommonSettings
from mailsage.wiring import backends
from tests.conftest import ROOT, ApiClient, load_event

OPENAPI = ROOT / "functions" / "api" / "openapi.json"
EXAMPLES_PER_OPERATION = 100  # about a minute for the whole document (57 s measured here)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


class ApiGatewayShim:
    """A WSGI app that hands each request to the real api handler as an API Gateway event, the way
    the local runtime's HTTP server does, and turns its result back into the HTTP reply."""

    def __init__(self) -> None:
        self.handler: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        import base64

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            name[5:].replace("_", "-").title(): value
            for name, value in environ.items()
            if name.startswith("HTTP_")
        }
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(name):
                headers[name.replace("_", "-").title()] = environ[name]
        # The path as the client wrote it (an encoded "/" in a parameter stays encoded), then the query.
        path = environ.get("RAW_URI", "").partition("?")[0] or quote(environ["PATH_INFO"])
        query = environ.get("QUERY_STRING", "")
        raw_uri = path.encode("latin-1").decode("utf-8", "replace") + (f"?{query}" if query else "")
        event = api_gateway_event(environ["REQUEST_METHOD"], raw_uri, headers, body)
        result = self.handler.lambda_handler(event, LocalContext("mailsage-api"))
        reply_headers = dict(result.get("headers") or {})
        for name, values in (result.get("multiValueHeaders") or {}).items():
            reply_headers[name] = values[-1]
        raw = result.get("body") or ""
        payload = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
        status = int(result["statusCode"])
        start_response(f"{status} {_REASONS.get(status, 'Status')}", list(reply_headers.items()))
        return [payload]


_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request"}

app = ApiGatewayShim()
schema = schemathesis.openapi.from_path(OPENAPI)
schema.app = app
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    # Every request carries the valid key (below): taking the credentials away is the business of
    # the auth tests, and here it would only turn each negative case into a 401.
    with_security_parameters=False,
    # A query parameter the document does not name is ignored, as by AhaSend's API: OpenAPI does
    # not make it invalid, so it is not negative data.
    allow_extra_parameters=False,
)
# Input the document rules out must be refused with a 4xx: any 4xx (a body over the size limit is a
# 413), never a success and never a 5xx (schemathesis's default list lacks 413 and takes a 5xx as a refusal).
schema.config.checks = ChecksConfig.from_dict({"negative_data_rejection": {"expected-statuses": ["4XX"]}})


class Tenant:
    account_id = ""
    key = ""
    # Resources of the account, made before fuzzing, keyed by the path parameter that names them
    # (webhook ids per surface: "webhook_id" on v1, "v2:webhook_id" on v2).
    seeded: dict[str, str] = {}


def _seed(api: ApiClient, account_id: str) -> dict[str, str]:
    """One of each resource a path names, so that the fuzzer reaches the operations on them (update,
    preview, control, cancel, deliveries) and not only their 404."""
    send = json.loads(load_event("api_batch.json")["body"])  # campaign_xyz
    v2_message = json.loads(load_event("api_v2_create_message.json")["body"])
    hook = {"name": "fuzz", "url": "https://hooks.example.com/mailsage", "events": ["message.delivered"]}
    replies = {
        "template_id": api.post("/api/v1/templates", {"name": "t", "subject": "Hi {{ name }}", "text": "x"}),
        "job_id": api.post("/api/v1/emails/batch", send),
        "webhook_id": api.post("/api/v1/webhooks", hook),
        "message_id": api.post(f"/v2/accounts/{account_id}/messages", v2_message),
        "v2:webhook_id": api.post(
            f"/v2/accounts/{account_id}/webhooks", {"name": "fuzz", "url": hook["url"], "scope": "global"}
        ),
    }
    for name, reply in replies.items():
        assert reply.status in (201, 202), (name, reply.body)
    body = {name: reply.body for name, reply in replies.items()}
    return {
        "template_id": body["template_id"]["template_id"],
        "job_id": body["job_id"]["job_id"],
        "campaign_id": send["campaign_id"],
        "webhook_id": body["webhook_id"]["id"],
        "message_id": body["message_id"]["data"][0]["id"],
        "v2:webhook_id": body["v2:webhook_id"]["id"],
    }


@pytest.fixture(scope="module", autouse=True)
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The api handler on a data directory of its own, and one account with a key."""
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAILSAGE_DATA_DIR", str(data_dir))
        mp.setenv("MAILSAGE_PUBLIC_URL", "http://127.0.0.1:8025")
        # One account, thousands of requests back to back: far past the per-account request limit
        # (20/s by default), whose 429 the fuzzer would take for an undocumented reply.
        mp.setenv("MAILSAGE_ACCOUNT_RATE_LIMIT", "100000")
        mp.setenv("MAILSAGE_ACCOUNT_RATE_BURST", "100000")
        for name in ("MAILSAGE_SMTP_URL", "MAILSAGE_DEV_API_KEY", "MAILSAGE_DEV_ACCOUNT_ID"):
            mp.delenv(name, raising=False)
        Tenant.account_id = str(uuid.uuid4())
        Tenant.key = AuthService(backends(CommonSettings()).store).create_key(Tenant.account_id)
        app.handler = load_handler("api")
        Tenant.seeded = _seed(ApiClient(app.handler, Tenant.key), Tenant.account_id)
        yield


def _own_account(case: Any) -> None:
    """v2 paths name the account: a well-formed account id becomes the caller's own, so the fuzzer
    reaches the operation instead of the 403 of another account (a malformed one stays malformed)."""
    value = (case.path_parameters or {}).get("account_id")
    try:
        uuid.UUID(str(value))
    except ValueError:
        return
    case.path_parameters["account_id"] = Tenant.account_id


def _existing_resources(case: Any) -> None:
    """In about half the cases whose path the fuzzer generated valid, name the seeded resource
    instead (chosen by a checksum of the generated value: the same cases every run)."""
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH):
        return
    v2 = case.operation.path.startswith("/v2/")
    for name, value in (case.path_parameters or {}).items():
        seeded = Tenant.seeded.get(f"v2:{name}" if v2 and name == "webhook_id" else name)
        if seeded is not None and zlib.crc32(str(value).encode()) % 2 == 0:
            case.path_parameters[name] = seeded


def _null_as_sent(case: Any) -> None:
    """A query value of None is dropped by every HTTP client (requests, werkzeug), so a negative case
    `limit=[null, null]` would go out as no `limit` at all and be answered 200, rightly. Send it as
    schemathesis reports it (`?limit=null&limit=null`), which is the invalid input it meant."""
    for name, value in (case.query or {}).items():
        if value is None:
            case.query[name] = "null"
        elif isinstance(value, list):
            case.query[name] = ["null" if v is None else v for v in value]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_reply_matches_the_document(case: Any) -> None:
    # Given a request the fuzzer generated from the document (fitting it, or not), with a valid key
    _own_account(case)
    _existing_resources(case)
    _null_as_sent(case)
    # When the real api handler answers it
    # Then the reply is documented, and input the document rules out is refused with a 4xx
    case.call_and_validate(headers={"Authorization": f"Bearer {Tenant.key}"}, checks=CHECKS)


@pytest.mark.parametrize("query", ["sender=not-an-address", "recipient=nobody", "sender=a@b@c.example"])
def test_address_filters_that_are_not_addresses_are_a_400(query: str) -> None:
    # Given the v2 message listing, whose sender and recipient filters are `format: email`
    api = ApiClient(app.handler, Tenant.key)
    # When a filter is not an address
    reply = api.get(f"/v2/accounts/{Tenant.account_id}/messages?{query}")
    # Then it is refused in the v2 envelope, naming the filter
    assert reply.status == 400, reply.body
    assert set(reply.body) == {"message"} and query.partition("=")[0] in reply.body["message"]

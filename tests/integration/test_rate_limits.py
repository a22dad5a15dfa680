"""The per-account request limit on both runtimes: the real api handler over a real SQLite file
(the local runtime, also through its HTTP front door) and over DynamoDB under moto (the AWS api
function). Over the limit: 429 in each surface's envelope with Retry-After and the RateLimit fields;
replies within it carry the fields too; unauthenticated and public requests are not counted.

With a limiter on a ManualClock (apps built with their own services): a burst then recovery, one
limit shared by two app instances (two processes) over one store, accounts apart, and requests let
through when the store fails (SQLite locked, DynamoDB throttled)."""

from __future__ import annotations

import http.client
import logging
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from mailsage.api.app import create_app
from mailsage.domain.auth import AuthService
from mailsage.domain.clock import ManualClock
from mailsage.domain.rate_limits import KEY_PREFIX, AccountRateLimiter, RatePolicy
from mailsage.local.functions import HandlerPool, load_handler
from mailsage.local.http import http_server
from mailsage.ports import PacingStore, Store
from mailsage.settings import ApiSettings, CommonSettings
from mailsage.wiring import api_services, backends
from tests.conftest import Account, ApiClient, Reply

TEMPLATES = "/api/v1/templates"
POLICY = re.compile(r'^"account";q=(\d+);w=(\d+)$')
LIMIT = re.compile(r'^"account";r=(\d+);t=(\d+)$')


@dataclass
class Runtime:
    name: str  # "sqlite" (the local runtime) or "aws" (the api function on DynamoDB)
    store: Store
    failing: Callable[[], PacingStore]  # a store of this runtime whose limiter writes really fail

    def account(self) -> Account:
        account_id = str(uuid.uuid4())
        return Account(account_id, AuthService(self.store).create_key(account_id))


@pytest.fixture(params=["sqlite", "aws"])
def runtime(
    request: pytest.FixtureRequest, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    if request.param == "sqlite":
        holders: list[sqlite3.Connection] = []
        yield Runtime("sqlite", backends(CommonSettings()).store, lambda: _locked(monkeypatch, holders))
        for holder in holders:
            holder.close()
        return
    import boto3

    from mailsage.adapters.aws.dynamodb import DynamoStore
    from tests.contract.aws_store import dynamodb_table
    from tests.moto_env import REGION, use_aws_backend

    suffix = uuid.uuid4().hex[:12]  # names of their own: the wiring caches backends per settings
    with dynamodb_table(f"mailsage-{suffix}") as table:
        sqs = boto3.client("sqs", region_name=REGION)
        send_url = sqs.create_queue(QueueName=f"send-{suffix}")["QueueUrl"]
        use_aws_backend(monkeypatch, data_dir, table, send_url)
        yield Runtime("aws", DynamoStore(table), lambda: _throttled_dynamodb(table))


def _locked(monkeypatch: pytest.MonkeyPatch, holders: list[sqlite3.Connection]) -> PacingStore:
    """A store on the data directory's database whose write lock another connection holds (one of
    `holders`, until the test ends), with a short busy timeout."""
    from mailsage.adapters.sqlite import db as sqlite_db
    from mailsage.adapters.sqlite.store import SqliteStore

    path = CommonSettings().database_path
    monkeypatch.setattr(sqlite_db, "BUSY_TIMEOUT_SECONDS", 0.2)
    store = SqliteStore(sqlite_db.Database(str(path)))
    store.pacing_state("warm-up")  # opened (and migrated) before the lock is taken
    holder = sqlite3.connect(path, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holders.append(holder)
    return store


def _throttled_dynamodb(table: str) -> PacingStore:
    """A store on the table whose every call is throttled by DynamoDB (as boto3 raises it)."""
    import boto3
    from botocore.stub import Stubber

    from mailsage.adapters.aws.dynamodb import DynamoStore

    client = boto3.client("dynamodb")
    stubber = Stubber(client)
    for _ in range(10):
        stubber.add_client_error(
            "get_item", service_error_code="ProvisionedThroughputExceededException", http_status_code=400
        )
    stubber.activate()
    return DynamoStore(table, client)


def limited_api(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, rate: str, burst: str
) -> tuple[ApiClient, str]:
    """The real api handler (a cold start) with MAILSAGE_ACCOUNT_RATE_LIMIT/_BURST, for a new
    account; the client and the account's id."""
    monkeypatch.setenv("MAILSAGE_ACCOUNT_RATE_LIMIT", rate)
    monkeypatch.setenv("MAILSAGE_ACCOUNT_RATE_BURST", burst)
    account = runtime.account()
    return ApiClient(load_handler("api"), account.key), account.id


def clocked_app(limiter: AccountRateLimiter) -> SimpleNamespace:
    """An api app (a process) of this environment's settings whose requests count on `limiter`."""
    settings = ApiSettings()
    services = replace(api_services(settings), rate_limits=limiter)
    app = create_app(settings, services=lambda: services)
    return SimpleNamespace(lambda_handler=app.resolve)


def assert_limit_fields(reply: Reply, burst: int) -> tuple[int, int]:
    """The RateLimit-Policy and RateLimit fields are there and well formed; (r, t)."""
    policy = POLICY.match(reply.headers.get("ratelimit-policy", ""))
    limit = LIMIT.match(reply.headers.get("ratelimit", ""))
    assert policy and limit, reply.headers
    assert int(policy.group(1)) == burst and int(policy.group(2)) >= 1
    return int(limit.group(1)), int(limit.group(2))


def assert_refused(reply: Reply) -> int:
    """A 429 with Retry-After (whole seconds, at least 1) and RateLimit r=0;t=Retry-After."""
    assert reply.status == 429, (reply.status, reply.body)
    retry_after = int(reply.headers["retry-after"])
    assert retry_after >= 1
    assert LIMIT.match(reply.headers.get("ratelimit", "")), reply.headers
    assert reply.headers["ratelimit"] == f'"account";r=0;t={retry_after}'
    return retry_after


# -- the real handler, both runtimes -----------------------------------------------------------


def test_v1_over_the_limit_is_429_with_retry_after_and_ratelimit_fields(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an account allowed 3 requests at once and one every 1000 s after
    api, account_id = limited_api(runtime, monkeypatch, "0.001", "3")
    # When it makes three requests / Then each is answered, counting down what is left
    left = []
    for _ in range(3):
        reply = api.get(TEMPLATES)
        assert reply.status == 200, reply.body
        left.append(assert_limit_fields(reply, 3)[0])
    assert left == [2, 1, 0]
    # When it makes a fourth / Then 429 in the v1 envelope, with when to retry
    refused = api.get(TEMPLATES)
    retry_after = assert_refused(refused)
    assert refused.error["code"] == "rate_limit"
    assert refused.error["details"] == {"retry_after": retry_after}
    assert assert_limit_fields(refused, 3)[0] == 0
    # And the count is kept under a key of its own in the shared pacing store
    assert runtime.store.pacing_state(KEY_PREFIX + account_id) is not None


def test_v2_over_the_limit_is_429_in_the_v2_shape(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an account allowed 2 requests at once on the AhaSend-compatible surface
    api, account_id = limited_api(runtime, monkeypatch, "0.001", "2")
    path = f"/v2/accounts/{account_id}/suppressions"
    for _ in range(2):
        reply = api.get(path)
        assert reply.status == 200, reply.body
        assert_limit_fields(reply, 2)
    # When it makes a third / Then 429 with the contract's {"message"} and the same headers
    refused = api.get(path)
    assert_refused(refused)
    assert set(refused.body) == {"message"} and "too many requests" in refused.body["message"]


def test_unauthenticated_and_public_requests_are_not_counted(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an account allowed 2 requests at once
    api, _ = limited_api(runtime, monkeypatch, "0.001", "2")
    # When many requests come without a key, with a wrong key, and to the public /u and /t routes
    for _ in range(5):
        assert api.get(TEMPLATES, key=None).status == 401
        assert api.get(TEMPLATES, key="ms_wrong").status == 401
        assert api.get("/u/not-a-token").status in (400, 404)
        assert api.get("/t/o/not-a-token").status in (200, 400, 404)
    # Then the account still has its whole burst
    assert [api.get(TEMPLATES).status for _ in range(3)] == [200, 200, 429]


def test_a_limit_of_zero_is_off(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given MAILSAGE_ACCOUNT_RATE_LIMIT=0
    api, account_id = limited_api(runtime, monkeypatch, "0", "1")
    # When an account makes many requests at once / Then all are answered, without the fields
    replies = [api.get(TEMPLATES) for _ in range(30)]
    assert {r.status for r in replies} == {200}
    assert not any("ratelimit" in r.headers for r in replies)
    # And nothing was written for it
    assert runtime.store.pacing_state(KEY_PREFIX + account_id) is None


# -- apps on a ManualClock, both runtimes ------------------------------------------------------


def test_a_burst_then_recovery(runtime: Runtime) -> None:
    # Given an account allowed 2 requests a second, 4 at once, on a clock the test moves
    clock = ManualClock()
    account = runtime.account()
    api = ApiClient(clocked_app(AccountRateLimiter(runtime.store, RatePolicy(2.0, 4), clock)), account.key)
    # When it makes 4 requests at one instant / Then all are answered; the 5th is refused
    assert [api.get(TEMPLATES).status for _ in range(4)] == [200] * 4
    assert assert_refused(api.get(TEMPLATES)) == 1
    # When half a second passed / Then exactly one more is answered
    clock.advance(0.5)
    assert [api.get(TEMPLATES).status for _ in range(2)] == [200, 429]
    # When two seconds passed / Then the whole burst is back
    clock.advance(2.0)
    replies = [api.get(TEMPLATES) for _ in range(4)]
    assert [r.status for r in replies] == [200] * 4
    assert assert_limit_fields(replies[0], 4) == (3, 1)


def test_two_app_instances_over_one_store_share_the_limit(runtime: Runtime) -> None:
    # Given two api processes (each its own limiter and blocks) over one store, 1/s burst 4
    clock = ManualClock()
    account = runtime.account()
    apis = [
        ApiClient(clocked_app(AccountRateLimiter(runtime.store, RatePolicy(1.0, 4), clock)), account.key)
        for _ in range(2)
    ]
    # When the account's requests alternate between them / Then 4 are answered in all, not 4 each
    statuses = [apis[i % 2].get(TEMPLATES).status for i in range(8)]
    assert statuses.count(200) == 4 and statuses[4:] == [429] * 4
    # When a second passed / Then one more, through either
    clock.advance(1.0)
    assert [apis[1].get(TEMPLATES).status, apis[0].get(TEMPLATES).status] == [200, 429]


def test_concurrent_requests_through_two_apps_never_pass_the_burst(runtime: Runtime) -> None:
    # Given two api processes over one store, each with 4 handler instances answering at once (as
    # `mailsage serve`'s pool: one limiter per process); a burst of 10 at 100/s (so steady traffic
    # takes blocks of tokens) on a clock that does not move
    clock = ManualClock()
    account = runtime.account()
    limiters = [AccountRateLimiter(runtime.store, RatePolicy(100.0, 10), clock) for _ in range(2)]
    apps = [clocked_app(limiters[i % 2]) for i in range(8)]
    statuses: list[int] = []

    def client(app: SimpleNamespace) -> None:
        api = ApiClient(app, account.key)
        statuses.extend(api.get(TEMPLATES).status for _ in range(8))

    threads = [threading.Thread(target=client, args=(app,)) for app in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    # Then of the 64 requests at most the burst were answered, the rest refused
    assert len(statuses) == 64 and set(statuses) <= {200, 429}
    assert 1 <= statuses.count(200) <= 10


def test_two_accounts_do_not_limit_each_other(runtime: Runtime) -> None:
    # Given one app and two accounts allowed 3 requests at once each
    clock = ManualClock()
    app = clocked_app(AccountRateLimiter(runtime.store, RatePolicy(1.0, 3), clock))
    alpha, bravo = (ApiClient(app, runtime.account().key) for _ in range(2))
    # When alpha uses up its burst and more / Then bravo still has its own, on both surfaces
    assert [alpha.get(TEMPLATES).status for _ in range(5)] == [200, 200, 200, 429, 429]
    assert [bravo.get(TEMPLATES).status for _ in range(3)] == [200, 200, 200]
    assert bravo.get(TEMPLATES).status == 429


def test_a_request_refused_for_its_body_counts_once(runtime: Runtime) -> None:
    # Given an account allowed 2 requests at once
    account = runtime.account()
    api = ApiClient(
        clocked_app(AccountRateLimiter(runtime.store, RatePolicy(1.0, 2), ManualClock())), account.key
    )
    # When it posts a body that fails validation (the gate then runs from the validation handler)
    assert api.post(TEMPLATES, {"name": 5}).status == 400
    # Then that counted one request: one is left, and the one after is refused
    left = api.get(TEMPLATES)
    assert left.status == 200 and assert_limit_fields(left, 2)[0] == 0
    assert api.get(TEMPLATES).status == 429


def test_a_refused_request_does_not_use_its_idempotency_key(runtime: Runtime) -> None:
    # Given an account allowed 1 request at once, 1 a second
    clock = ManualClock()
    account = runtime.account()
    api = ApiClient(clocked_app(AccountRateLimiter(runtime.store, RatePolicy(1.0, 1), clock)), account.key)
    template = {"name": "welcome", "subject": "Hi", "text": "Hello"}
    assert api.post(TEMPLATES, template, headers={"Idempotency-Key": "first"}).status == 201
    # When a create with a new key is refused for the limit
    refused = api.post(TEMPLATES, template | {"name": "second"}, headers={"Idempotency-Key": "second"})
    assert_refused(refused)
    # Then the same request sent again once a token is back runs (it is not a replay of the 429)
    clock.advance(1.0)
    again = api.post(TEMPLATES, template | {"name": "second"}, headers={"Idempotency-Key": "second"})
    assert again.status == 201 and "idempotent-replayed" not in again.headers
    assert again.body["name"] == "second"


def test_a_failing_store_lets_requests_through(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    # Given a limiter of 1 request at once whose store fails for real (SQLite: the database's write
    # lock held by another connection past the busy timeout; DynamoDB: throttled)
    account = runtime.account()
    limiter = AccountRateLimiter(runtime.failing(), RatePolicy(1.0, 1), ManualClock())
    api = ApiClient(clocked_app(limiter), account.key)
    # When the account makes three requests at once
    with caplog.at_level(logging.WARNING, logger="mailsage.domain.rate_limits"):
        replies = [api.get(TEMPLATES) for _ in range(3)]
    # Then every one is answered (fail open), without the fields, and the failure is logged
    assert [r.status for r in replies] == [200] * 3
    assert not any("ratelimit" in r.headers for r in replies)
    assert any("letting requests through" in r.getMessage() for r in caplog.records)


# -- the local runtime's HTTP front door -------------------------------------------------------


def test_mailsage_serve_answers_429_over_http(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given `mailsage serve`'s front door and api handler pool, with 2 requests at once per account
    monkeypatch.setenv("MAILSAGE_ACCOUNT_RATE_LIMIT", "0.001")
    monkeypatch.setenv("MAILSAGE_ACCOUNT_RATE_BURST", "2")
    account_id = str(uuid.uuid4())
    key = AuthService(backends(CommonSettings()).store).create_key(account_id)
    httpd = http_server("127.0.0.1", 0, HandlerPool("api", size=2), ApiSettings(), timeout=5.0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        # When the account makes three requests over HTTP
        replies = [_http_get(httpd.server_address[1], f"/v2/accounts/{account_id}/suppressions", key)]
        replies += [_http_get(httpd.server_address[1], TEMPLATES, key) for _ in range(2)]
    finally:
        httpd.shutdown()
        httpd.server_close()
    # Then two are answered with the fields and the third is a v1 429 with Retry-After
    assert [r[0] for r in replies] == [200, 200, 429]
    assert replies[1][1]["ratelimit"] == '"account";r=0;t=2000'
    assert replies[1][1]["ratelimit-policy"] == '"account";q=2;w=2000'
    status, headers, body = replies[2]
    assert int(headers["retry-after"]) >= 1 and b'"rate_limit"' in body


def _http_get(port: int, path: str, key: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {key}"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()

"""`Idempotency-Key` on the create operations of v1 (send, batch, templates) and v2 (create
message): the real api handler, a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from mailsage.api.dependencies import api_services_dep, idempotency_service_dep
from mailsage.domain.clock import ManualClock
from mailsage.domain.idempotency import IdempotencyService
from mailsage.domain.submission import SubmissionService
from mailsage.errors import ValidationFailed
from mailsage.local.functions import load_handler
from mailsage.settings import ApiSettings
from mailsage.wiring import Backends, api_services, build_api_services
from tests.conftest import Account, ApiClient, Reply

SEND = "/api/v1/emails/send"
BATCH = "/api/v1/emails/batch"
TEMPLATES = "/api/v1/templates"
REPLAYED = "idempotent-replayed"


def send_body(email: str = "user@example.com", **extra: Any) -> dict[str, Any]:
    return {"recipient": {"email": email}, "subject": "Hello", "body": "Hi there", **extra}


def batch_body(n: int = 3) -> dict[str, Any]:
    return {
        "subject": "Hello {{ name }}",
        "body": "Dear {{ name }}",
        "recipients": [{"email": f"user{i}@example.com", "variables": {"name": f"U{i}"}} for i in range(n)],
    }


def with_key(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def job_count(data_dir: Path, account_id: str) -> int:
    with sqlite3.connect(data_dir / "mailsage.db") as conn:
        return int(
            conn.execute("SELECT count(*) FROM jobs WHERE account_id = ?", (account_id,)).fetchone()[0]
        )


class Recording:
    """A handler that keeps the raw Lambda results, to compare reply bodies byte for byte."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.results: list[dict[str, Any]] = []

    def lambda_handler(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        result = self.handler.lambda_handler(event, context)
        self.results.append(result)
        return result


@pytest.fixture
def recorded(api_handler: Any, account: Account) -> tuple[ApiClient, Recording]:
    recording = Recording(api_handler)
    return ApiClient(recording, account.key), recording


Submit = Callable[..., Any]  # (the real SubmissionService, *args, **kwargs) -> its result


class StandInSubmission:
    """The submission service a handler's routes are given (v1 send and batch, v2 create message):
    its `submit` is the test's, which may call the real service's."""

    def __init__(self, real: SubmissionService, submit: Submit) -> None:
        self.real = real
        self._submit = submit

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        return self._submit(self.real, *args, **kwargs)


def with_submit(handler: Any, submit: Submit) -> None:
    """Override the services of `handler`'s app with ones that submit through `submit`."""
    settings = ApiSettings()
    stand_in = StandInSubmission(api_services(settings).submission, submit)
    services = build_api_services(settings, submission=cast(SubmissionService, stand_in))
    handler.app.dependency_overrides[api_services_dep] = lambda: services


def count_submits(handler: Any) -> list[int]:
    calls: list[int] = []
    real = SubmissionService.submit

    def counting(self: SubmissionService, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(self, *args, **kwargs)

    with_submit(handler, counting)
    return calls


# -- v1: the cases of the issue ---------------------------------------------------------------


def slow_submission(self: SubmissionService, *args: Any, **kwargs: Any) -> Any:
    """Every submission takes 0.5 s, so two racing requests overlap."""
    time.sleep(0.5)
    return SubmissionService.submit(self, *args, **kwargs)


def race(account: Account, request: Callable[[ApiClient], Reply], submit: Submit) -> list[Reply]:
    """Run `request` at the same moment on two handler instances (one resolver is not
    thread-safe, as two Lambda execution environments would), each submitting through `submit`;
    errors in a thread are raised."""
    clients = [ApiClient(load_handler("api"), account.key) for _ in range(2)]
    for client in clients:
        with_submit(client.handler, submit)
    start = threading.Barrier(2)
    replies: list[Reply] = []
    failures: list[BaseException] = []

    def call(client: ApiClient) -> None:
        try:
            start.wait()
            replies.append(request(client))
        except BaseException as exc:  # surfaced below, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failures, failures
    return replies


def test_without_a_key_each_request_runs(api: ApiClient, data_dir: Path, account: Account) -> None:
    first = api.post(SEND, send_body())
    second = api.post(SEND, send_body())
    assert first.status == second.status == 202
    assert first.body["job_id"] != second.body["job_id"]
    assert REPLAYED not in first.headers and REPLAYED not in second.headers
    assert job_count(data_dir, account.id) == 2


@pytest.mark.parametrize(("path", "body"), [(SEND, send_body()), (BATCH, batch_body())])
def test_replay_returns_the_original_reply_byte_for_byte_and_creates_nothing(
    recorded: tuple[ApiClient, Recording],
    stores: Backends,
    data_dir: Path,
    account: Account,
    path: str,
    body: dict[str, Any],
) -> None:
    api, recording = recorded
    first = api.post(path, body, headers=with_key("order-1"))
    depth = stores.queue.depth()
    second = api.post(path, body, headers=with_key("order-1"))

    assert first.status == 202, first.body
    assert REPLAYED not in first.headers  # a fresh execution never says false
    assert second.status == 202
    assert second.headers[REPLAYED] == "true"
    assert recording.results[1]["body"] == recording.results[0]["body"]  # the same bytes
    assert second.headers["content-type"] == first.headers["content-type"] == "application/json"
    assert job_count(data_dir, account.id) == 1
    assert stores.queue.depth() == depth


def test_the_body_matches_as_canonical_json(api: ApiClient, data_dir: Path, account: Account) -> None:
    # Given the same payload serialized with another key order and whitespace
    body = send_body()
    first = api.post(SEND, raw_body=json.dumps(body), headers=with_key("k"))
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)
    second = api.post(SEND, raw_body=reordered, headers=with_key("k"))
    # Then it is the same request: replayed
    assert second.status == 202 and second.headers[REPLAYED] == "true"
    assert second.body == first.body
    assert job_count(data_dir, account.id) == 1


def test_a_request_in_progress_gets_409_with_retry_after(
    api: ApiClient, data_dir: Path, account: Account
) -> None:
    # Given a second handler instance that repeats the request while the first one is submitting
    other = ApiClient(load_handler("api"), account.key)
    during: list[Reply] = []
    real = SubmissionService.submit

    def submit_and_retry(self: SubmissionService, *args: Any, **kwargs: Any) -> Any:
        if not during:
            during.append(other.post(SEND, send_body(), headers=with_key("slow")))
        return real(self, *args, **kwargs)

    with_submit(api.handler, submit_and_retry)
    first = api.post(SEND, send_body(), headers=with_key("slow"))

    [concurrent] = during
    assert concurrent.status == 409
    assert concurrent.error["code"] == "idempotency_in_progress"
    assert concurrent.headers[REPLAYED] == "false"
    assert int(concurrent.headers["retry-after"]) >= 1
    assert first.status == 202 and REPLAYED not in first.headers
    # Once the first completed, the same request is a replay
    after = other.post(SEND, send_body(), headers=with_key("slow"))
    assert after.status == 202 and after.headers[REPLAYED] == "true"
    assert after.body == first.body
    assert job_count(data_dir, account.id) == 1


def test_the_same_key_with_another_body_is_422(api: ApiClient, data_dir: Path, account: Account) -> None:
    first = api.post(SEND, send_body("a@example.com"), headers=with_key("k"))
    other = api.post(SEND, send_body("b@example.com"), headers=with_key("k"))
    assert first.status == 202
    assert other.status == 422
    assert other.error["code"] == "idempotency_mismatch"
    assert REPLAYED not in other.headers and "retry-after" not in other.headers
    assert job_count(data_dir, account.id) == 1


def test_the_same_key_on_another_path_is_422(api: ApiClient, data_dir: Path, account: Account) -> None:
    first = api.post(SEND, send_body(), headers=with_key("k"))
    other = api.post(BATCH, batch_body(), headers=with_key("k"))
    assert first.status == 202
    assert other.status == 422
    assert other.error["code"] == "idempotency_mismatch"
    assert job_count(data_dir, account.id) == 1


def test_a_4xx_reply_is_stored_and_replayed(recorded: tuple[ApiClient, Recording]) -> None:
    api, recording = recorded
    calls = count_submits(recording.handler)
    first = api.post(SEND, send_body("not-an-address"), headers=with_key("bad"))
    second = api.post(SEND, send_body("not-an-address"), headers=with_key("bad"))

    assert first.status == 400
    assert first.error["code"] == "invalid_recipient"
    assert REPLAYED not in first.headers
    assert second.status == 400 and second.headers[REPLAYED] == "true"
    assert recording.results[1]["body"] == recording.results[0]["body"]
    assert len(calls) == 1  # the replay did not run the request


def test_a_5xx_reply_is_not_stored_and_the_retry_runs(
    api: ApiClient, data_dir: Path, account: Account
) -> None:
    # Given a submission that fails unexpectedly once
    real = SubmissionService.submit
    failures = [RuntimeError("the database went away")]

    def flaky(self: SubmissionService, *args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real(self, *args, **kwargs)

    with_submit(api.handler, flaky)
    first = api.post(SEND, send_body(), headers=with_key("retry-me"))
    second = api.post(SEND, send_body(), headers=with_key("retry-me"))

    assert first.status == 500
    assert first.error["code"] == "internal_error"
    assert second.status == 202, second.body
    assert REPLAYED not in second.headers  # it ran: not a replay
    third = api.post(SEND, send_body(), headers=with_key("retry-me"))
    assert third.headers[REPLAYED] == "true" and third.body == second.body
    assert job_count(data_dir, account.id) == 1


def test_keys_are_per_account(
    api_handler: Any, account: Account, new_account: Callable[[], Account], data_dir: Path
) -> None:
    other = new_account()
    a = ApiClient(api_handler, account.key).post(SEND, send_body(), headers=with_key("shared"))
    b = ApiClient(api_handler, other.key).post(SEND, send_body(), headers=with_key("shared"))
    assert a.status == b.status == 202
    assert REPLAYED not in b.headers
    assert a.body["job_id"] != b.body["job_id"]
    assert job_count(data_dir, account.id) == job_count(data_dir, other.id) == 1


def test_an_expired_key_runs_again(data_dir: Path, account: Account, stores: Backends) -> None:
    # Given keys remembered for 1 s, on a clock the test moves
    clock = ManualClock(time.time())
    ids = IdempotencyService(stores.store, 1, clock)
    api = ApiClient(load_handler("api"), account.key)
    api.handler.app.dependency_overrides[idempotency_service_dep] = lambda **_: ids
    first = api.post(SEND, send_body(), headers=with_key("short-lived"))
    clock.advance(1.1)
    second = api.post(SEND, send_body(), headers=with_key("short-lived"))
    assert first.status == second.status == 202
    assert REPLAYED not in second.headers
    assert second.body["job_id"] != first.body["job_id"]
    assert job_count(data_dir, account.id) == 2


def test_a_key_over_255_characters_is_400(api: ApiClient, data_dir: Path, account: Account) -> None:
    too_long = api.post(SEND, send_body(), headers=with_key("k" * 256))
    assert too_long.status == 400
    assert too_long.error["code"] == "validation_error"
    assert too_long.error["details"] == {"field": "Idempotency-Key", "max": 255}
    assert job_count(data_dir, account.id) == 0
    longest = api.post(SEND, send_body(), headers=with_key("k" * 255))
    assert longest.status == 202


def test_an_unauthenticated_request_does_not_touch_the_key(api: ApiClient) -> None:
    refused = api.post(SEND, send_body(), key=None, headers=with_key("k"))
    assert refused.status == 401
    accepted = api.post(SEND, send_body(), headers=with_key("k"))
    assert accepted.status == 202 and REPLAYED not in accepted.headers


def test_template_creation_is_idempotent_and_preview_ignores_the_key(api: ApiClient) -> None:
    template = {"name": "welcome", "subject": "Hi {{ name }}", "text": "Hello {{ name }}"}
    created = api.post(TEMPLATES, template, headers=with_key("tpl"))
    again = api.post(TEMPLATES, template, headers=with_key("tpl"))
    assert created.status == again.status == 201
    assert again.headers[REPLAYED] == "true" and again.body == created.body
    assert len(api.get(TEMPLATES).body["data"]) == 1

    preview = f"{TEMPLATES}/{created.body['template_id']}/preview"
    first = api.post(preview, {"variables": {"name": "Ann"}}, headers=with_key("tpl"))
    second = api.post(preview, {"variables": {"name": "Bob"}}, headers=with_key("tpl"))
    assert first.status == second.status == 200  # an action: the key is not even compared
    assert REPLAYED not in second.headers
    assert second.body["subject"] == "Hi Bob"


def test_two_concurrent_requests_with_one_key_run_once(data_dir: Path, account: Account) -> None:
    # Given a slow submission and two handler instances (one resolver is not thread-safe)
    replies = race(
        account, lambda client: client.post(SEND, send_body(), headers=with_key("race")), slow_submission
    )

    assert len(replies) == 2
    assert job_count(data_dir, account.id) == 1
    fresh = [r for r in replies if r.status == 202 and REPLAYED not in r.headers]
    others = [r for r in replies if r not in fresh]
    assert len(fresh) == 1 and len(others) == 1, [(r.status, r.headers.get(REPLAYED)) for r in replies]
    [other] = others
    if other.status == 409:
        assert other.headers[REPLAYED] == "false" and int(other.headers["retry-after"]) >= 1
    else:  # it arrived after the first completed
        assert other.status == 202 and other.headers[REPLAYED] == "true"
        assert other.body == fresh[0].body


# -- v2: create message ------------------------------------------------------------------------


def v2_message(email: str = "user@example.com") -> dict[str, Any]:
    return {
        "from": {"email": "sender@example.com", "name": "Sender"},
        "recipients": [{"email": email}],
        "subject": "Hello",
        "text_content": "Hi there",
    }


def messages_path(account: Account) -> str:
    return f"/v2/accounts/{account.id}/messages"


def test_v2_create_message_replay_is_byte_identical_and_creates_nothing(
    recorded: tuple[ApiClient, Recording], data_dir: Path, account: Account, stores: Backends
) -> None:
    api, recording = recorded
    first = api.post(messages_path(account), v2_message(), headers=with_key("m-1"))
    depth = stores.queue.depth()
    second = api.post(messages_path(account), v2_message(), headers=with_key("m-1"))

    assert first.status == 202, first.body
    assert REPLAYED not in first.headers
    assert second.status == 202 and second.headers[REPLAYED] == "true"
    assert recording.results[1]["body"] == recording.results[0]["body"]
    assert job_count(data_dir, account.id) == 1
    assert stores.queue.depth() == depth


def test_v2_without_a_key_each_request_runs(api: ApiClient, data_dir: Path, account: Account) -> None:
    assert api.post(messages_path(account), v2_message()).status == 202
    second = api.post(messages_path(account), v2_message())
    assert second.status == 202 and REPLAYED not in second.headers
    assert job_count(data_dir, account.id) == 2


def test_v2_in_progress_is_409_with_the_v2_envelope(api: ApiClient, account: Account, data_dir: Path) -> None:
    other = ApiClient(load_handler("api"), account.key)
    during: list[Reply] = []
    real = SubmissionService.submit

    def submit_and_retry(self: SubmissionService, *args: Any, **kwargs: Any) -> Any:
        if not during:
            during.append(other.post(messages_path(account), v2_message(), headers=with_key("slow")))
        return real(self, *args, **kwargs)

    with_submit(api.handler, submit_and_retry)
    first = api.post(messages_path(account), v2_message(), headers=with_key("slow"))

    [concurrent] = during
    assert first.status == 202, first.body
    assert concurrent.status == 409
    assert set(concurrent.body) == {"message"}
    assert concurrent.headers[REPLAYED] == "false"
    assert int(concurrent.headers["retry-after"]) >= 1
    assert job_count(data_dir, account.id) == 1


def test_v2_mismatches_are_422_with_the_v2_envelope(api: ApiClient, account: Account, data_dir: Path) -> None:
    assert api.post(messages_path(account), v2_message(), headers=with_key("k")).status == 202
    body = api.post(messages_path(account), v2_message("other@example.com"), headers=with_key("k"))
    path = api.post(SEND, send_body(), headers=with_key("k"))  # the keys are shared by both surfaces
    assert body.status == 422 and set(body.body) == {"message"}
    assert REPLAYED not in body.headers and "retry-after" not in body.headers
    assert path.status == 422 and path.error["code"] == "idempotency_mismatch"
    assert job_count(data_dir, account.id) == 1


def test_v2_a_4xx_reply_is_stored_and_replayed(api: ApiClient, account: Account) -> None:
    # Given a submission refused by the domain once (a 400 produced inside the route)
    real = SubmissionService.submit
    calls: list[int] = []

    def refuse_once(self: SubmissionService, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ValidationFailed("refused for the test")
        return real(self, *args, **kwargs)

    with_submit(api.handler, refuse_once)
    first = api.post(messages_path(account), v2_message(), headers=with_key("refused"))
    second = api.post(messages_path(account), v2_message(), headers=with_key("refused"))
    assert first.status == 400, first.body
    assert set(first.body) == {"message"}
    assert REPLAYED not in first.headers
    assert second.status == 400 and second.body == first.body
    assert second.headers[REPLAYED] == "true"
    assert len(calls) == 1  # the replay did not run the request


def test_v2_a_5xx_reply_is_not_stored(api: ApiClient, account: Account, data_dir: Path) -> None:
    real = SubmissionService.submit
    failures = [RuntimeError("boom")]

    def flaky(self: SubmissionService, *args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real(self, *args, **kwargs)

    with_submit(api.handler, flaky)
    first = api.post(messages_path(account), v2_message(), headers=with_key("k"))
    second = api.post(messages_path(account), v2_message(), headers=with_key("k"))
    assert first.status == 500
    assert second.status == 202, second.body
    assert REPLAYED not in second.headers
    assert job_count(data_dir, account.id) == 1


def test_v2_a_key_over_255_characters_is_400(api: ApiClient, account: Account, data_dir: Path) -> None:
    reply = api.post(messages_path(account), v2_message(), headers=with_key("k" * 256))
    assert reply.status == 400 and set(reply.body) == {"message"}
    assert job_count(data_dir, account.id) == 0


def test_v2_two_concurrent_requests_with_one_key_run_once(data_dir: Path, account: Account) -> None:
    replies = race(
        account,
        lambda client: client.post(messages_path(account), v2_message(), headers=with_key("race")),
        slow_submission,
    )

    assert job_count(data_dir, account.id) == 1
    outcomes = sorted((r.status, r.headers.get(REPLAYED)) for r in replies)
    assert outcomes in ([(202, None), (409, "false")], [(202, None), (202, "true")]), outcomes

"""The Python client's retry rules, against an `httpx.MockTransport` that answers each attempt as
scripted: what is retried, with which key, after how long, and what is raised."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from mailsage_client import (
    APIConnectionError,
    AsyncMailSage,
    ConflictError,
    MailSage,
    MailSageError,
    RateLimitError,
    ServerError,
    ValidationError,
)

JOB = {
    "job_id": "job_1",
    "kind": "send",
    "state": "queued",
    "campaign_id": None,
    "total": 1,
    "counts": {"queued": 1},
    "progress": {"processed": 0, "total": 1, "percent": 0.0},
    "dead_letters": [],
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
    "started_at": None,
    "finished_at": None,
    "paused_reason": None,
    "throttled": 0,
    "send_rate": None,
}
SENT = {"job_id": "job_1", "message_id": "m1", "status": "queued"}
Reply = httpx.Response | Exception


def v1_error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": f"a {code}"}}, headers=headers)


class Script:
    """Answers the n-th request with the n-th reply (an exception is raised, as a broken
    connection would be); records every request."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []
        self.waits: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def client(self, max_retries: int = 3) -> MailSage:
        http = httpx.Client(transport=httpx.MockTransport(self))
        client = MailSage("http://mailsage.test", "key", max_retries=max_retries, http_client=http)
        client._sleep = self.waits.append
        return client

    def sent_keys(self) -> list[str | None]:
        return [r.headers.get("Idempotency-Key") for r in self.requests]


def send(client: MailSage) -> Any:
    return client.emails.send("ada@example.com", subject="Hi", text="Hello")


def test_a_create_that_failed_with_a_5xx_is_retried_with_the_same_key() -> None:
    # Given a server that fails the first attempt
    script = Script(v1_error(503, "service_unavailable"), httpx.Response(202, json=SENT))
    # When the client sends
    reply = send(script.client())
    # Then the second attempt carries the first one's key, and its reply is the result
    assert reply.message_id == "m1"
    keys = script.sent_keys()
    assert len(keys) == 2 and keys[0] is not None and keys[0] == keys[1]
    assert len(script.waits) == 1 and 0.25 <= script.waits[0] <= 0.5  # backoff with jitter


def test_a_create_whose_connection_broke_is_retried_with_the_same_key() -> None:
    script = Script(httpx.ReadError("connection reset"), httpx.Response(202, json=SENT))
    reply = send(script.client())
    assert reply.job_id == "job_1"
    assert len(set(script.sent_keys())) == 1 and None not in script.sent_keys()


def test_the_callers_key_is_sent_on_every_attempt() -> None:
    script = Script(v1_error(500, "internal_error"), httpx.Response(202, json=SENT))
    script.client().emails.send("ada@example.com", subject="Hi", text="x", idempotency_key="order-42")
    assert script.sent_keys() == ["order-42", "order-42"]


def test_each_create_gets_its_own_key() -> None:
    script = Script(httpx.Response(202, json=SENT), httpx.Response(202, json=SENT))
    client = script.client()
    send(client)
    send(client)
    first, second = script.sent_keys()
    assert first and second and first != second


def test_a_request_without_a_key_is_not_repeated_after_a_broken_connection() -> None:
    # Job control has no idempotency: a second pause after one that may have run is not safe.
    script = Script(httpx.ReadError("connection reset"), httpx.Response(200, json=JOB))
    with pytest.raises(APIConnectionError) as raised:
        script.client().jobs.pause("job_1")
    assert raised.value.status is None and raised.value.code == "connection_error"
    assert len(script.requests) == 1 and script.sent_keys() == [None]


def test_a_request_without_a_key_is_not_repeated_after_a_5xx() -> None:
    script = Script(v1_error(500, "internal_error"), httpx.Response(200, json=JOB))
    with pytest.raises(ServerError):
        script.client().jobs.stop("job_1")
    assert len(script.requests) == 1


def test_a_get_is_retried_after_a_5xx() -> None:
    script = Script(v1_error(502, "bad_gateway"), httpx.Response(200, json=JOB))
    assert script.client().jobs.get("job_1").state == "queued"
    assert len(script.requests) == 2


def test_429_waits_for_retry_after() -> None:
    # Given a refusal with Retry-After: 7
    script = Script(v1_error(429, "rate_limit", {"Retry-After": "7"}), httpx.Response(202, json=SENT))
    # When the client sends
    send(script.client())
    # Then it waited exactly that long, once
    assert script.waits == [7.0]
    assert len(script.requests) == 2


def test_429_is_retried_even_for_a_request_without_a_key() -> None:
    # A 429 is answered before the request runs, so repeating it is always safe.
    script = Script(v1_error(429, "rate_limit", {"Retry-After": "1"}), httpx.Response(200, json=JOB))
    assert script.client().jobs.pause("job_1").job_id == "job_1"
    assert script.waits == [1.0]


def test_a_long_retry_after_is_capped() -> None:
    script = Script(v1_error(429, "rate_limit", {"Retry-After": "3600"}), httpx.Response(202, json=SENT))
    send(script.client())
    assert script.waits == [60.0]


def test_429_after_the_last_retry_is_raised_with_retry_after() -> None:
    limited = [v1_error(429, "rate_limit", {"Retry-After": "2"}) for _ in range(3)]
    script = Script(*limited)
    with pytest.raises(RateLimitError) as raised:
        send(script.client(max_retries=2))
    assert raised.value.status == 429 and raised.value.code == "rate_limit"
    assert raised.value.retry_after == 2.0
    assert len(script.requests) == 3 and script.waits == [2.0, 2.0]


def test_max_retries_bounds_the_attempts_and_the_backoff_grows() -> None:
    script = Script(*[v1_error(503, "service_unavailable") for _ in range(4)])
    with pytest.raises(ServerError) as raised:
        send(script.client(max_retries=3))
    assert raised.value.code == "service_unavailable"
    assert len(script.requests) == 4
    # Exponential: each wait's range [base·2^n / 2, base·2^n] lies above the previous one's.
    assert [round(w / 0.5, 3) for w in script.waits] == sorted(round(w / 0.5, 3) for w in script.waits)
    assert script.waits[2] >= 1.0 and script.waits[0] <= 0.5


def test_no_retries_when_max_retries_is_0() -> None:
    script = Script(v1_error(503, "service_unavailable"))
    with pytest.raises(ServerError):
        send(script.client(max_retries=0))
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    "in_progress",
    [
        # v1: the error code says it
        v1_error(409, "idempotency_in_progress", {"Retry-After": "1", "Idempotent-Replayed": "false"}),
        # v2: `{"message"}` only; the header says it
        httpx.Response(409, json={"message": "still in progress"}, headers={"Idempotent-Replayed": "false"}),
    ],
)
def test_a_key_still_in_progress_is_retried(in_progress: httpx.Response) -> None:
    script = Script(in_progress, httpx.Response(202, json=SENT))
    send(script.client())
    assert len(script.requests) == 2 and len(set(script.sent_keys())) == 1


def test_a_key_used_with_another_body_is_raised_at_once() -> None:
    script = Script(v1_error(422, "idempotency_mismatch"), httpx.Response(202, json=SENT))
    with pytest.raises(ValidationError) as raised:
        send(script.client())
    assert raised.value.code == "idempotency_mismatch" and raised.value.status == 422
    assert len(script.requests) == 1


def test_a_conflict_that_is_not_a_key_in_progress_is_raised_at_once() -> None:
    script = Script(v1_error(409, "conflict"), httpx.Response(200, json=JOB))
    with pytest.raises(ConflictError) as raised:
        script.client().jobs.resume("job_1")
    assert raised.value.code == "conflict"
    assert len(script.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 415])
def test_other_client_errors_are_never_retried(status: int) -> None:
    script = Script(v1_error(status, "some_code"), httpx.Response(202, json=SENT))
    with pytest.raises(MailSageError) as raised:
        send(script.client())
    assert raised.value.status == status and raised.value.code == "some_code"
    assert len(script.requests) == 1


def test_an_error_without_a_json_body_still_has_a_code() -> None:
    script = Script(httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(ServerError) as raised:
        send(script.client(max_retries=0))
    assert raised.value.code == "server_error" and "Bad Gateway" in raised.value.message


def test_a_v2_error_gets_a_code_from_its_status() -> None:
    script = Script(httpx.Response(404, json={"message": "message not found"}))
    with pytest.raises(MailSageError) as raised:
        script.client().account("acc").messages.get("m1")
    assert (raised.value.status, raised.value.code, raised.value.message) == (
        404,
        "not_found",
        "message not found",
    )


def test_requests_carry_the_key_and_the_body_the_api_expects() -> None:
    script = Script(httpx.Response(202, json=SENT))
    script.client().emails.send(
        "ada@example.com", subject="Hi", text="Hello", name="Ada", variables={"n": 1}, from_="a@b.example"
    )
    request = script.requests[0]
    assert request.url.path == "/api/v1/emails/send"
    assert request.headers["Authorization"] == "Bearer key"
    assert json.loads(request.content) == {
        "recipient": {"email": "ada@example.com", "name": "Ada", "variables": {"n": 1}},
        "subject": "Hi",
        "body": "Hello",
        "from": "a@b.example",
    }


def test_pagination_follows_the_cursor_until_the_last_page() -> None:
    def page(items: list[str], cursor: str | None) -> httpx.Response:
        data = [{"email": e, "id": e, "created_at": "t", "expires_at": "t"} for e in items]
        return httpx.Response(
            200, json={"data": data, "pagination": {"has_more": cursor is not None, "next_cursor": cursor}}
        )

    script = Script(page(["a", "b"], "c1"), page(["c"], "c2"), page([], None))
    emails = [s.email for s in script.client().account("acc").suppressions.list(limit=2)]
    assert emails == ["a", "b", "c"]
    afters = [r.url.params.get("after") for r in script.requests]
    assert afters == [None, "c1", "c2"]
    assert {r.url.params["limit"] for r in script.requests} == {"2"}


def test_a_missing_api_key_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILSAGE_API_KEY", raising=False)
    with pytest.raises(MailSageError) as raised:
        MailSage("http://mailsage.test")
    assert raised.value.code == "missing_api_key" and raised.value.status is None
    assert "MAILSAGE_API_KEY" in raised.value.message


def test_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSAGE_URL", "http://from-env.test:9/")
    monkeypatch.setenv("MAILSAGE_API_KEY", "env-key")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=JOB)

    client = MailSage(http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    client.jobs.get("job_1")
    assert str(seen[0].url) == "http://from-env.test:9/api/v1/emails/jobs/job_1"
    assert seen[0].headers["Authorization"] == "Bearer env-key"


def test_the_package_is_marked_typed() -> None:
    import mailsage_client

    assert (Path(mailsage_client.__file__).parent / "py.typed").is_file()


def test_retry_after_as_an_http_date_is_understood() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    script = Script(
        v1_error(503, "service_unavailable", {"Retry-After": when}), httpx.Response(202, json=SENT)
    )
    send(script.client())
    assert len(script.waits) == 1 and 25 <= script.waits[0] <= 30


def test_the_async_client_retries_by_the_same_rules() -> None:
    # Given a server that throttles, then fails, then accepts
    script = Script(
        v1_error(429, "rate_limit", {"Retry-After": "3"}),
        httpx.ReadError("connection reset"),
        httpx.Response(202, json=SENT),
    )
    waits: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        return script(request)

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def scenario() -> str:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with AsyncMailSage("http://mailsage.test", "key", http_client=http) as client:
            client._sleep = sleep
            reply = await client.emails.send("ada@example.com", subject="Hi", text="x")
            return reply.message_id

    # When the async client sends
    assert asyncio.run(scenario()) == "m1"
    # Then it waited Retry-After, then a backoff, and sent one key three times
    assert waits[0] == 3.0 and 0.5 <= waits[1] <= 1.0
    keys = script.sent_keys()
    assert len(keys) == 3 and len(set(keys)) == 1 and keys[0]


def test_the_async_client_does_not_repeat_an_unsafe_request() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset")

    async def scenario() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with AsyncMailSage("http://mailsage.test", "key", http_client=http) as client:
            await client.jobs.pause("job_1")

    with pytest.raises(APIConnectionError):
        asyncio.run(scenario())


def test_following_a_job_polls_until_it_is_done() -> None:
    running = {**JOB, "state": "running"}
    done = {**JOB, "state": "completed", "finished_at": "2026-01-01T00:00:01Z"}
    script = Script(*(httpx.Response(200, json=j) for j in (JOB, running, done)))
    client = script.client()
    states = [job.state for job in client.jobs.follow("job_1", interval=2.0)]
    assert states == ["queued", "running", "completed"]
    assert script.waits == [2.0, 2.0]


def test_a_success_reply_that_cannot_be_read_is_a_mailsage_error() -> None:
    script = Script(httpx.Response(200, text="<html>captive portal</html>"))
    with pytest.raises(MailSageError) as raised:
        script.client().jobs.get("job_1")
    assert raised.value.code == "invalid_reply" and raised.value.status == 200


def test_waiting_for_a_job_that_does_not_finish_times_out_naming_its_state() -> None:
    paused = {**JOB, "state": "paused"}
    script = Script(*(httpx.Response(200, json=paused) for _ in range(3)))
    with pytest.raises(TimeoutError, match="still paused after 2 s"):
        script.client().jobs.wait("job_1", interval=2.0, timeout=3.0)
    assert script.waits == [2.0]


def test_waiting_for_a_job_returns_it_done() -> None:
    done = {**JOB, "state": "completed", "finished_at": "2026-01-01T00:00:01Z"}
    script = Script(httpx.Response(200, json=JOB), httpx.Response(200, json=done))
    assert script.client().jobs.wait("job_1", interval=1.0, timeout=5.0).state == "completed"
    assert script.waits == [1.0]


def test_the_async_wait_times_out_as_the_sync_one() -> None:
    waits: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**JOB, "state": "paused"})

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    async def scenario() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with AsyncMailSage("http://mailsage.test", "key", http_client=http) as client:
            client._sleep = no_sleep
            await client.jobs.wait("job_1", interval=2.0, timeout=5.0)

    with pytest.raises(TimeoutError, match="still paused after 4 s"):
        asyncio.run(scenario())
    assert waits == [2.0, 2.0]

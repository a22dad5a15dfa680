"""A job its provider parked, as the v1 job reply shows it and as a caller controls it, through the
real api handler on both stores (SQLite, and DynamoDB under moto)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mailsage.domain.auth import AuthService
from mailsage.domain.events import Event, job_event
from mailsage.domain.jobs import JobService
from mailsage.domain.models import EventType
from mailsage.local.functions import load_handler
from mailsage.ports import Store
from tests.conftest import ApiClient

QUOTA = "daily_quota"


@dataclass
class Backend:
    api: ApiClient
    account_id: str
    store: Store


def _sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    from mailsage.settings import CommonSettings
    from mailsage.wiring import backends

    monkeypatch.setenv("MAILSAGE_DATA_DIR", str(tmp_path / "data"))
    for name in ("MAILSAGE_SMTP_URL", "MAILSAGE_DEV_API_KEY", "MAILSAGE_DEV_ACCOUNT_ID"):
        monkeypatch.delenv(name, raising=False)
    store = backends(CommonSettings()).store
    account_id = str(uuid.uuid4())
    yield Backend(
        ApiClient(load_handler("api"), AuthService(store).create_key(account_id)), account_id, store
    )


def _dynamodb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
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
        store = DynamoStore(table)
        account_id = str(uuid.uuid4())
        key = AuthService(store).create_key(account_id)
        yield Backend(ApiClient(load_handler("api"), key), account_id, store)


@pytest.fixture(params=["dynamodb", "sqlite"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    make = _dynamodb if request.param == "dynamodb" else _sqlite
    yield from make(tmp_path, monkeypatch)


def submit_batch(api: ApiClient, n: int = 3) -> str:
    reply = api.post(
        "/api/v1/emails/batch",
        {"subject": "Hi", "body": "Hello", "recipients": [{"email": f"u{i}@example.com"} for i in range(n)]},
    )
    assert reply.status == 202, reply.body
    return str(reply.body["job_id"])


def job_reply(api: ApiClient, job_id: str) -> dict[str, Any]:
    reply = api.get(f"/api/v1/emails/jobs/{job_id}")
    assert reply.status == 200, reply.body
    return dict(reply.body)


def control(api: ApiClient, job_id: str, action: str) -> Any:
    return api.post(f"/api/v1/emails/jobs/{job_id}/control", {"action": action})


# -- the reply ----------------------------------------------------------------------------------------


def test_a_job_reply_shows_neither_reason_nor_pacing_at_first(backend: Backend) -> None:
    # Given a batch just accepted / When its job is read
    body = job_reply(backend.api, submit_batch(backend.api))
    # Then it is not parked, never throttled and not paced
    assert (body["paused_reason"], body["throttled"], body["send_rate"]) == (None, 0, None)


def test_a_parked_job_shows_its_reason_until_its_provider_sends_again(backend: Backend) -> None:
    # Given a batch whose provider's daily quota ran out
    job_id = submit_batch(backend.api)
    assert backend.store.park_job(backend.account_id, job_id, QUOTA) is not None
    # When its job is read / Then it is paused with the reason
    parked = job_reply(backend.api, job_id)
    assert (parked["state"], parked["paused_reason"]) == ("paused", QUOTA)
    # And once the provider sends again, it runs with no reason
    assert backend.store.unpark_job(backend.account_id, job_id) is not None
    resumed = job_reply(backend.api, job_id)
    assert (resumed["state"], resumed["paused_reason"]) == ("running", None)


def test_a_paced_job_shows_its_throttles_and_rate(backend: Backend) -> None:
    # Given a job whose sends were throttled three times and are paced at 14/s
    job_id = submit_batch(backend.api)
    backend.store.record_pacing(job_id, 2, 28.0)
    backend.store.record_pacing(job_id, 1, 14.0)
    # When its job is read / Then the reply shows both
    body = job_reply(backend.api, job_id)
    assert (body["throttled"], body["send_rate"]) == (3, 14.0)


# -- a caller's control of a parked job ------------------------------------------------------------------


def test_a_callers_resume_of_a_parked_job_runs_it_and_clears_the_reason(backend: Backend) -> None:
    # Given a parked batch
    job_id = submit_batch(backend.api)
    backend.store.park_job(backend.account_id, job_id, QUOTA)
    # When the caller resumes it
    reply = control(backend.api, job_id, "resume")
    # Then it runs, no longer parked, and its provider's probe leaves it alone
    assert reply.status == 200, reply.body
    assert (reply.body["state"], reply.body["paused_reason"]) == ("running", None)
    assert backend.store.unpark_job(backend.account_id, job_id) is None


def test_a_callers_pause_of_a_parked_job_makes_it_wait_for_the_caller(backend: Backend) -> None:
    # Given a parked batch
    job_id = submit_batch(backend.api)
    backend.store.park_job(backend.account_id, job_id, QUOTA)
    # When the caller pauses it
    reply = control(backend.api, job_id, "pause")
    # Then it stays paused, now without a reason: its provider sending again does not resume it
    assert reply.status == 200, reply.body
    assert (reply.body["state"], reply.body["paused_reason"]) == ("paused", None)
    assert backend.store.unpark_job(backend.account_id, job_id) is None
    assert job_reply(backend.api, job_id)["state"] == "paused"
    # And pausing it again is the usual conflict
    again = control(backend.api, job_id, "pause")
    assert again.status == 409, again.body


def test_a_callers_stop_of_a_parked_job_stops_it(backend: Backend) -> None:
    # Given a parked batch
    job_id = submit_batch(backend.api)
    backend.store.park_job(backend.account_id, job_id, QUOTA)
    # When the caller stops it / Then every message is cancelled and nothing resumes it
    reply = control(backend.api, job_id, "stop")
    assert reply.status == 200, reply.body
    assert (reply.body["state"], reply.body["paused_reason"]) == ("stopped", None)
    assert reply.body["counts"]["cancelled"] == 3
    assert backend.store.unpark_job(backend.account_id, job_id) is None


@dataclass
class RecordingQueue:
    """The bodies a JobService puts on the send queue (which queue a lane maps to is the queue
    adapter's business, not the service's)."""

    bodies: list[dict[str, Any]] = field(default_factory=list)

    def send(self, bodies: list[dict[str, Any]], dedup_keys: Any = None, delay_seconds: float = 0.0) -> None:
        self.bodies += bodies


@pytest.mark.parametrize(("path", "lane"), [("send", "transactional"), ("batch", None)])
def test_a_callers_resume_of_a_parked_job_requeues_its_chunks_in_its_lane(
    backend: Backend, path: str, lane: str | None
) -> None:
    # Given a parked single send, or a parked batch
    body: dict[str, Any] = {"subject": "Hi", "body": "Hello"}
    if path == "send":
        body["recipient"] = {"email": "u0@example.com"}
    else:
        body["recipients"] = [{"email": "u0@example.com"}, {"email": "u1@example.com"}]
    accepted = backend.api.post(f"/api/v1/emails/{path}", body)
    assert accepted.status == 202, accepted.body
    job_id = accepted.body["job_id"]
    backend.store.park_job(backend.account_id, job_id, QUOTA)
    queue = RecordingQueue()
    # When the caller resumes it
    JobService(backend.store, queue).control(backend.account_id, job_id, "resume")  # type: ignore[arg-type]
    # Then its chunk is queued again, in the job's lane (a send's is transactional)
    assert [(b["job_id"], b["chunk"], b.get("lane")) for b in queue.bodies] == [(job_id, 0, lane)]


@dataclass
class RecordingPublisher:
    events: list[Event] = field(default_factory=list)

    def publish(self, events: Iterable[Event]) -> int:
        self.events += events
        return 0


def test_the_job_paused_event_of_a_parked_job_carries_its_reason(backend: Backend) -> None:
    # Given a batch its provider parked / When the event of that is built
    job_id = submit_batch(backend.api)
    parked = backend.store.park_job(backend.account_id, job_id, QUOTA)
    assert parked is not None
    event = job_event(EventType.JOB_PAUSED, parked)
    # Then it says why, as the job reply does
    assert (event.type, event.data["state"], event.data["paused_reason"]) == ("job.paused", "paused", QUOTA)


def test_a_callers_pause_of_a_parked_job_publishes_job_paused_without_a_reason(backend: Backend) -> None:
    # Given a parked batch
    job_id = submit_batch(backend.api)
    backend.store.park_job(backend.account_id, job_id, QUOTA)
    publisher = RecordingPublisher()
    service = JobService(backend.store, RecordingQueue(), publisher)  # type: ignore[arg-type]
    # When the caller pauses it
    service.control(backend.account_id, job_id, "pause")
    # Then subscribers learn it is now the caller's pause: job.paused, with no reason
    [event] = publisher.events
    assert event.type == "job.paused" and "paused_reason" not in event.data

"""Contract of the Store port's feedback part: engagement (opens, clicks, unsubscribes), campaign
totals, webhooks and their delivery log."""

from __future__ import annotations

import time
import uuid

import pytest

from mailsage.domain.models import (
    ENGAGEMENT_KINDS,
    Job,
    JobState,
    Message,
    MessageStatus,
    Webhook,
    WebhookDelivery,
)
from mailsage.ports import Store
from tests.contract.conftest import JobFactory
from tests.contract.test_store_contract import LONG_LEASE, nonzero, run_together

T0 = 1_700_000_000.0


# -- engagement ---------------------------------------------------------------------------------------


def test_first_open_counts_one_and_a_repeat_counts_two(store: Store, jobs: JobFactory) -> None:
    job, messages = jobs.create(chunk_sizes=(2,))
    assert store.record_engagement(job.account_id, messages[0].id, "opened", T0) == 1
    assert store.record_engagement(job.account_id, messages[0].id, "opened", T0 + 5) == 2
    # the other message of the job is not counted
    assert store.record_engagement(job.account_id, messages[1].id, "opened", T0 + 6) == 1


def test_engagement_kinds_are_counted_separately(store: Store, jobs: JobFactory) -> None:
    job, messages = jobs.create(chunk_sizes=(1,))
    m = messages[0].id
    assert store.record_engagement(job.account_id, m, "opened", T0) == 1
    assert store.record_engagement(job.account_id, m, "clicked", T0 + 1, "https://acme.test/a") == 1
    assert store.record_engagement(job.account_id, m, "clicked", T0 + 2, "https://acme.test/b") == 2
    assert store.record_engagement(job.account_id, m, "unsubscribed", T0 + 3) == 1
    assert store.record_engagement(job.account_id, m, "opened", T0 + 4) == 2
    assert store.record_engagement(job.account_id, m, "clicked", T0 + 5) == 3


def test_engagement_is_appended_to_the_message_events(store: Store, jobs: JobFactory) -> None:
    # Given a sent message (it has a "sent" event already)
    job, messages = jobs.create(chunk_sizes=(1,))
    store.claim_messages(job.id, [messages[0].id], LONG_LEASE)
    store.finish_message(messages[0].id, MessageStatus.SENT)
    # When it is opened, then clicked (after the send: the log is in time order)
    opened_at, clicked_at = time.time() + 10, time.time() + 20
    store.record_engagement(job.account_id, messages[0].id, "opened", opened_at)
    store.record_engagement(job.account_id, messages[0].id, "clicked", clicked_at, "https://acme.test/x")
    # Then both are in its event log, after the send, in order; the status is unchanged
    found = store.get_message(job.account_id, messages[0].id)
    assert found is not None
    assert found.status == MessageStatus.SENT
    assert [e["status"] for e in found.events] == ["sent", "opened", "clicked"]
    opened, clicked = found.events[1], found.events[2]
    assert opened == {"time": opened_at, "status": "opened", "log": ""}  # no detail: "", as other events
    assert clicked == {"time": clicked_at, "status": "clicked", "log": "https://acme.test/x"}


def test_engagement_of_another_accounts_message_is_none(store: Store, jobs: JobFactory) -> None:
    job, messages = jobs.create(account_id="acc_a", chunk_sizes=(1,))
    assert store.record_engagement("acc_b", messages[0].id, "opened", T0) is None
    # and nothing was counted or logged on the real owner's message
    found = store.get_message("acc_a", messages[0].id)
    assert found is not None and found.events == []
    assert store.record_engagement("acc_a", messages[0].id, "opened", T0) == 1


def test_engagement_of_an_unknown_message_is_none(store: Store, jobs: JobFactory) -> None:
    job, _ = jobs.create(chunk_sizes=(1,))
    assert store.record_engagement(job.account_id, str(uuid.uuid4()), "opened", T0) is None


@pytest.mark.parametrize("kind", ["open", "bounced", "", "OPENED"])
def test_engagement_of_an_invalid_kind_raises(store: Store, jobs: JobFactory, kind: str) -> None:
    job, messages = jobs.create(chunk_sizes=(1,))
    with pytest.raises(ValueError):
        store.record_engagement(job.account_id, messages[0].id, kind, T0)
    found = store.get_message(job.account_id, messages[0].id)
    assert found is not None and found.events == []


def test_every_engagement_kind_is_accepted(store: Store, jobs: JobFactory) -> None:
    job, messages = jobs.create(chunk_sizes=(1,))
    for kind in ENGAGEMENT_KINDS:
        assert store.record_engagement(job.account_id, messages[0].id, kind, T0) == 1


def test_concurrent_opens_are_each_counted_once(store: Store, jobs: JobFactory) -> None:
    job, messages = jobs.create(chunk_sizes=(1,))
    results = run_together(
        10, lambda: store.record_engagement(job.account_id, messages[0].id, "opened", time.time())
    )
    assert sorted(r or 0 for r in results) == list(range(1, 11))
    found = store.get_message(job.account_id, messages[0].id)
    assert found is not None and [e["status"] for e in found.events] == ["opened"] * 10


# -- campaign stats -------------------------------------------------------------------------------------


def _campaign_job(
    jobs: JobFactory,
    campaign_id: str | None,
    account_id: str = "acc_a",
    sendable: int = 3,
    suppressed: int = 0,
) -> tuple[Job, list[Message]]:
    """A queued job of a campaign; its last `suppressed` recipients suppressed at submission."""
    job, messages = jobs.build(account_id=account_id, chunk_sizes=(sendable + suppressed,))
    job.campaign_id = campaign_id
    for m in messages[sendable:]:
        m.status, m.chunk = MessageStatus.SUPPRESSED, -1
        m.error_code, m.error_message = "suppressed", "the recipient is on the suppression list"
    job.chunks = 1 if sendable else 0
    jobs.store.create_job(job, messages)
    return job, messages


def _send(store: Store, job: Job, messages: list[Message], status: MessageStatus) -> None:
    store.claim_messages(job.id, [m.id for m in messages], LONG_LEASE)
    for m in messages:
        store.finish_message(m.id, status, None if status == MessageStatus.SENT else "550", "x")


def test_campaign_stats_sum_the_statuses_of_every_job_of_the_campaign(store: Store, jobs: JobFactory) -> None:
    # Given two jobs of campaign c1, one of c2, one of another account's c1 and one without campaign
    j1, m1 = _campaign_job(jobs, "c1", sendable=4, suppressed=1)
    j2, m2 = _campaign_job(jobs, "c1", sendable=3, suppressed=2)
    j3, m3 = _campaign_job(jobs, "c2", sendable=2)
    jb, mb = _campaign_job(jobs, "c1", account_id="acc_b", sendable=2)
    _campaign_job(jobs, None, sendable=2)
    # and messages moved through sending: j1: 2 sent (one then delivered, one bounced), 1 failed,
    # 1 left queued; j2: 3 sent, one of them delivered; j3 and acc_b's job all sent
    _send(store, j1, m1[:2], MessageStatus.SENT)
    _send(store, j1, m1[2:3], MessageStatus.FAILED)
    store.update_delivery_status("acc_a", m1[0].id, MessageStatus.DELIVERED, [MessageStatus.SENT])
    store.update_delivery_status("acc_a", m1[1].id, MessageStatus.BOUNCED, [MessageStatus.SENT], "b", "550")
    _send(store, j2, m2[:3], MessageStatus.SENT)
    store.update_delivery_status("acc_a", m2[2].id, MessageStatus.DELIVERED, [MessageStatus.SENT])
    _send(store, j3, m3, MessageStatus.SENT)
    _send(store, jb, mb, MessageStatus.SENT)
    # When the stats of c1 are asked for
    stats = store.campaign_stats("acc_a", "c1")
    # Then they sum both of its jobs, and nothing else
    assert stats is not None
    assert (stats.campaign_id, stats.jobs) == ("c1", 2)
    assert nonzero(stats.counts) == {
        "delivered": 2,
        "bounced": 1,
        "failed": 1,
        "queued": 1,
        "sent": 2,
        "suppressed": 3,
    }
    assert (stats.opened, stats.clicked, stats.unsubscribed) == (0, 0, 0)
    c2 = store.campaign_stats("acc_a", "c2")
    assert c2 is not None and c2.jobs == 1 and nonzero(c2.counts) == {"sent": 2}
    other = store.campaign_stats("acc_b", "c1")
    assert other is not None and other.jobs == 1 and nonzero(other.counts) == {"sent": 2}


def test_campaign_stats_count_engaged_messages_not_events(store: Store, jobs: JobFactory) -> None:
    # Given two jobs of a campaign, with messages opened (one of them twice), clicked, unsubscribed
    j1, m1 = _campaign_job(jobs, "c1", sendable=3)
    j2, m2 = _campaign_job(jobs, "c1", sendable=2)
    jb, mb = _campaign_job(jobs, "c1", account_id="acc_b", sendable=1)
    _send(store, j1, m1, MessageStatus.SENT)
    _send(store, j2, m2, MessageStatus.SENT)
    _send(store, jb, mb, MessageStatus.SENT)
    for message, kind in [
        (m1[0], "opened"),
        (m1[0], "opened"),
        (m1[1], "opened"),
        (m2[0], "opened"),
        (m1[0], "clicked"),
        (m1[0], "clicked"),
        (m2[1], "clicked"),
        (m2[1], "unsubscribed"),
    ]:
        store.record_engagement("acc_a", message.id, kind, T0)
    store.record_engagement("acc_b", mb[0].id, "opened", T0)  # another account's campaign c1
    # When the stats are asked for / Then each counts messages, not events
    stats = store.campaign_stats("acc_a", "c1")
    assert stats is not None
    assert (stats.opened, stats.clicked, stats.unsubscribed) == (3, 2, 1)
    assert nonzero(stats.counts) == {"sent": 5}
    other = store.campaign_stats("acc_b", "c1")
    assert other is not None and (other.opened, other.clicked, other.unsubscribed) == (1, 0, 0)


def test_campaign_stats_of_an_unknown_campaign_is_none(store: Store, jobs: JobFactory) -> None:
    _campaign_job(jobs, "c1", account_id="acc_b")
    _campaign_job(jobs, None)
    assert store.campaign_stats("acc_a", "c9") is None
    # another account's campaign is not found either
    assert store.campaign_stats("acc_a", "c1") is None


def test_campaign_stats_of_an_untouched_campaign_count_its_queued_messages(
    store: Store, jobs: JobFactory
) -> None:
    job, _ = _campaign_job(jobs, "c1", sendable=2)
    stats = store.campaign_stats("acc_a", "c1")
    assert stats is not None
    assert (stats.jobs, nonzero(stats.counts)) == (1, {"queued": 2})
    assert (stats.opened, stats.clicked, stats.unsubscribed) == (0, 0, 0)
    assert set(stats.counts) <= {s.value for s in MessageStatus}


def test_campaign_stats_count_a_scheduled_job(store: Store, jobs: JobFactory) -> None:
    job, messages = jobs.build(
        chunk_sizes=(2,), state=JobState.SCHEDULED, message_status=MessageStatus.SCHEDULED
    )
    job.campaign_id = "c1"
    store.create_job(job, messages)
    stats = store.campaign_stats("acc_a", "c1")
    assert stats is not None and nonzero(stats.counts) == {"scheduled": 2}


# -- webhooks -----------------------------------------------------------------------------------------


def webhook(account_id: str = "acc_a", webhook_id: str | None = None, **changes: object) -> Webhook:
    hook = Webhook(
        id=webhook_id or str(uuid.uuid4()),
        account_id=account_id,
        name="Main endpoint",
        url="https://hooks.acme.test/mailsage",
        secret="whsec_c2VjcmV0LXNlY3JldA",
        enabled=True,
        events=["message.bounced", "message.delivered", "message.opened"],
        created_at=T0,
        updated_at=T0 + 0.5,
    )
    for name, value in changes.items():
        setattr(hook, name, value)
    return hook


def test_webhook_put_then_get_roundtrips(store: Store) -> None:
    hook = webhook()
    store.put_webhook(hook)
    assert store.get_webhook("acc_a", hook.id) == hook


def test_webhook_with_every_field_set_roundtrips(store: Store) -> None:
    hook = webhook(
        enabled=False,
        events=["job.completed", "message.failed"],
        scope="scoped",
        domains=["acme.test", "mail.acme.test"],
        success_count=7,
        error_count=3,
        errors_since_last_success=2,
        last_request_at=T0 + 99.25,
        disabled_reason="disabled after 2 consecutive failed deliveries",
    )
    store.put_webhook(hook)
    found = store.get_webhook("acc_a", hook.id)
    assert found == hook
    assert found is not None and found.last_request_at == T0 + 99.25 and found.enabled is False


def test_webhook_with_empty_lists_and_nothing_optional_roundtrips(store: Store) -> None:
    hook = webhook(events=[], domains=[], last_request_at=None, disabled_reason=None)
    store.put_webhook(hook)
    found = store.get_webhook("acc_a", hook.id)
    assert found == hook
    assert found is not None and found.last_request_at is None and found.disabled_reason is None
    assert found.enabled is True and found.events == [] and found.domains == []


def test_put_webhook_with_the_same_id_replaces_it(store: Store) -> None:
    hook = webhook(name="Old", domains=["old.test"], scope="scoped")
    store.put_webhook(hook)
    new = webhook(webhook_id=hook.id, name="New", url="https://new.acme.test/h", success_count=4)
    store.put_webhook(new)
    assert store.get_webhook("acc_a", hook.id) == new
    listed, more = store.list_webhooks("acc_a", 10, None)
    assert listed == [new] and more is False


def test_webhook_of_another_account_is_not_found(store: Store) -> None:
    hook = webhook("acc_a")
    store.put_webhook(hook)
    assert store.get_webhook("acc_b", hook.id) is None
    assert store.get_webhook("acc_a", str(uuid.uuid4())) is None


def test_same_webhook_id_in_two_accounts_are_two_webhooks(store: Store) -> None:
    hook_id = str(uuid.uuid4())
    store.put_webhook(webhook("acc_a", hook_id, name="A"))
    store.put_webhook(webhook("acc_b", hook_id, name="B"))
    a, b = store.get_webhook("acc_a", hook_id), store.get_webhook("acc_b", hook_id)
    assert a is not None and b is not None and (a.name, b.name) == ("A", "B")
    assert store.delete_webhook("acc_a", hook_id) is True
    assert store.get_webhook("acc_b", hook_id) is not None


def _ids(n: int) -> list[str]:
    return sorted(str(uuid.uuid4()) for _ in range(n))


def test_list_webhooks_orders_by_id_with_limit_and_has_more(store: Store) -> None:
    ids = _ids(5)
    for hook_id in reversed(ids):
        store.put_webhook(webhook("acc_a", hook_id))
    listed, more = store.list_webhooks("acc_a", 10, None)
    assert [w.id for w in listed] == ids and more is False
    listed, more = store.list_webhooks("acc_a", 2, None)
    assert [w.id for w in listed] == ids[:2] and more is True
    listed, more = store.list_webhooks("acc_a", 5, None)
    assert [w.id for w in listed] == ids and more is False


def test_list_webhooks_after_a_cursor(store: Store) -> None:
    ids = _ids(5)
    for hook_id in ids:
        store.put_webhook(webhook("acc_a", hook_id))
    listed, more = store.list_webhooks("acc_a", 2, ids[1])
    assert [w.id for w in listed] == ids[2:4] and more is True
    listed, more = store.list_webhooks("acc_a", 2, ids[3])
    assert [w.id for w in listed] == ids[4:] and more is False
    listed, more = store.list_webhooks("acc_a", 2, ids[4])
    assert listed == [] and more is False


def test_list_webhooks_pages_through_everything_once(store: Store) -> None:
    ids = _ids(7)
    for hook_id in ids:
        store.put_webhook(webhook("acc_a", hook_id))
    seen: list[str] = []
    after: str | None = None
    for _ in range(10):
        page, more = store.list_webhooks("acc_a", 3, after)
        seen += [w.id for w in page]
        if not more:
            break
        after = page[-1].id
    assert seen == ids


def test_list_webhooks_excludes_other_accounts(store: Store) -> None:
    mine = webhook("acc_a")
    store.put_webhook(mine)
    store.put_webhook(webhook("acc_b"))
    store.put_webhook(webhook("acc_b"))
    listed, more = store.list_webhooks("acc_a", 10, None)
    assert listed == [mine] and more is False
    assert store.list_webhooks("acc_c", 10, None) == ([], False)


def test_delete_webhook_is_true_then_false(store: Store) -> None:
    hook = webhook()
    store.put_webhook(hook)
    assert store.delete_webhook("acc_a", hook.id) is True
    assert store.get_webhook("acc_a", hook.id) is None
    assert store.list_webhooks("acc_a", 10, None) == ([], False)
    assert store.delete_webhook("acc_a", hook.id) is False
    assert store.delete_webhook("acc_a", str(uuid.uuid4())) is False


def test_delete_webhook_of_another_account_is_false_and_keeps_it(store: Store) -> None:
    hook = webhook("acc_a")
    store.put_webhook(hook)
    assert store.delete_webhook("acc_b", hook.id) is False
    assert store.get_webhook("acc_a", hook.id) == hook


# -- webhook attempts ---------------------------------------------------------------------------------


def test_a_failed_attempt_counts_an_error(store: Store) -> None:
    hook = webhook(success_count=2)
    store.put_webhook(hook)
    counted = store.record_webhook_attempt("acc_a", hook.id, False, T0 + 10, disable_after=5)
    assert counted is not None
    assert (counted.success_count, counted.error_count, counted.errors_since_last_success) == (2, 1, 1)
    assert counted.last_request_at == T0 + 10 and counted.enabled is True and counted.disabled_reason is None
    counted = store.record_webhook_attempt("acc_a", hook.id, False, T0 + 20, disable_after=5)
    assert counted is not None
    assert (counted.success_count, counted.error_count, counted.errors_since_last_success) == (2, 2, 2)
    assert counted.last_request_at == T0 + 20
    # what it returns is what is stored
    assert store.get_webhook("acc_a", hook.id) == counted


def test_a_successful_attempt_resets_the_consecutive_errors(store: Store) -> None:
    hook = webhook()
    store.put_webhook(hook)
    store.record_webhook_attempt("acc_a", hook.id, False, T0 + 1, disable_after=5)
    store.record_webhook_attempt("acc_a", hook.id, False, T0 + 2, disable_after=5)
    counted = store.record_webhook_attempt("acc_a", hook.id, True, T0 + 3, disable_after=5)
    assert counted is not None
    assert (counted.success_count, counted.error_count, counted.errors_since_last_success) == (1, 2, 0)
    assert counted.last_request_at == T0 + 3 and counted.enabled is True
    # the other fields are untouched
    assert (counted.name, counted.url, counted.secret, counted.events) == (
        hook.name,
        hook.url,
        hook.secret,
        hook.events,
    )
    assert store.get_webhook("acc_a", hook.id) == counted


def test_consecutive_failures_disable_the_webhook(store: Store) -> None:
    hook = webhook()
    store.put_webhook(hook)
    # failures interrupted by a success do not add up
    store.record_webhook_attempt("acc_a", hook.id, False, T0 + 1, disable_after=3)
    store.record_webhook_attempt("acc_a", hook.id, False, T0 + 2, disable_after=3)
    store.record_webhook_attempt("acc_a", hook.id, True, T0 + 3, disable_after=3)
    store.record_webhook_attempt("acc_a", hook.id, False, T0 + 4, disable_after=3)
    counted = store.record_webhook_attempt("acc_a", hook.id, False, T0 + 5, disable_after=3)
    assert counted is not None and counted.enabled is True and counted.errors_since_last_success == 2
    # the third in a row disables it
    counted = store.record_webhook_attempt("acc_a", hook.id, False, T0 + 6, disable_after=3)
    assert counted is not None
    assert counted.enabled is False and counted.disabled_reason
    assert (counted.error_count, counted.errors_since_last_success, counted.success_count) == (5, 3, 1)
    stored = store.get_webhook("acc_a", hook.id)
    assert (
        stored is not None and stored.enabled is False and stored.disabled_reason == counted.disabled_reason
    )


def test_attempt_of_an_unknown_or_another_accounts_webhook_is_none(store: Store) -> None:
    hook = webhook("acc_a")
    store.put_webhook(hook)
    assert store.record_webhook_attempt("acc_a", str(uuid.uuid4()), False, T0, disable_after=3) is None
    assert store.record_webhook_attempt("acc_b", hook.id, False, T0, disable_after=3) is None
    assert store.get_webhook("acc_a", hook.id) == hook  # untouched
    store.delete_webhook("acc_a", hook.id)
    assert store.record_webhook_attempt("acc_a", hook.id, True, T0, disable_after=3) is None
    assert store.get_webhook("acc_a", hook.id) is None  # not recreated


def test_concurrent_failed_attempts_are_each_counted(store: Store) -> None:
    hook = webhook()
    store.put_webhook(hook)
    results = run_together(
        20, lambda: store.record_webhook_attempt("acc_a", hook.id, False, time.time(), disable_after=100)
    )
    assert all(r is not None for r in results)
    assert sorted(r.errors_since_last_success for r in results if r) == list(range(1, 21))
    found = store.get_webhook("acc_a", hook.id)
    assert found is not None
    assert (found.error_count, found.errors_since_last_success, found.enabled) == (20, 20, True)


def test_concurrent_failures_disable_the_webhook_once_reached(store: Store) -> None:
    hook = webhook()
    store.put_webhook(hook)
    results = run_together(
        20, lambda: store.record_webhook_attempt("acc_a", hook.id, False, time.time(), disable_after=5)
    )
    # exactly the attempts that counted 1..4 saw it enabled
    assert sorted(r.enabled for r in results if r).count(True) == 4
    found = store.get_webhook("acc_a", hook.id)
    assert found is not None
    assert (found.error_count, found.enabled) == (20, False) and found.disabled_reason


# -- webhook deliveries -------------------------------------------------------------------------------


def delivery(
    webhook_id: str,
    account_id: str = "acc_a",
    delivery_id: str | None = None,
    created_at: float | None = None,
    expires_at: float | None = -1.0,
    **changes: object,
) -> WebhookDelivery:
    now = time.time()
    created = created_at if created_at is not None else now
    d = WebhookDelivery(
        id=delivery_id or f"msg_{uuid.uuid4().hex}",
        account_id=account_id,
        webhook_id=webhook_id,
        event_type="message.delivered",
        payload='{"type":"message.delivered","data":{"id":"x"}}',
        created_at=created,
        updated_at=created,
        expires_at=now + 86_400 if expires_at == -1.0 else expires_at,
    )
    for name, value in changes.items():
        setattr(d, name, value)
    return d


ATTEMPTS = [
    {"time": T0 + 1, "status_code": 500, "error": "HTTP 500", "duration_ms": 120, "replay": False},
    {
        "time": T0 + 61.5,
        "status_code": None,
        "error": "connection refused",
        "duration_ms": 3,
        "replay": False,
    },
    {"time": T0 + 200, "status_code": 204, "error": None, "duration_ms": 45, "replay": True},
]


def test_delivery_put_then_get_roundtrips(store: Store) -> None:
    d = delivery("wh_1")
    store.put_webhook_delivery(d)
    assert store.get_webhook_delivery("acc_a", "wh_1", d.id) == d


def test_delivery_with_attempts_roundtrips(store: Store) -> None:
    d = delivery("wh_1", status="retrying", attempts=ATTEMPTS[:2], next_attempt_at=T0 + 120.5)
    store.put_webhook_delivery(d)
    found = store.get_webhook_delivery("acc_a", "wh_1", d.id)
    assert found == d
    assert found is not None and found.attempts[1]["status_code"] is None


def test_delivery_without_expiry_roundtrips(store: Store) -> None:
    d = delivery("wh_1", expires_at=None)
    store.put_webhook_delivery(d)
    assert store.get_webhook_delivery("acc_a", "wh_1", d.id) == d
    assert store.list_webhook_deliveries("acc_a", "wh_1", 10, None) == ([d], False)


def test_put_delivery_again_replaces_it(store: Store) -> None:
    d = delivery("wh_1", attempts=ATTEMPTS[:1], status="retrying", next_attempt_at=T0 + 60)
    store.put_webhook_delivery(d)
    d2 = delivery(
        "wh_1",
        delivery_id=d.id,
        created_at=d.created_at,
        attempts=ATTEMPTS,
        status="succeeded",
        next_attempt_at=None,
    )
    d2.updated_at = d.created_at + 200
    store.put_webhook_delivery(d2)
    assert store.get_webhook_delivery("acc_a", "wh_1", d.id) == d2
    assert store.list_webhook_deliveries("acc_a", "wh_1", 10, None) == ([d2], False)


def test_delivery_is_scoped_by_account_and_webhook(store: Store) -> None:
    d = delivery("wh_1", account_id="acc_a")
    store.put_webhook_delivery(d)
    assert store.get_webhook_delivery("acc_b", "wh_1", d.id) is None
    assert store.get_webhook_delivery("acc_a", "wh_2", d.id) is None
    assert store.get_webhook_delivery("acc_a", "wh_1", "msg_missing") is None


def test_the_same_delivery_id_for_two_webhooks_is_two_entries(store: Store) -> None:
    a = delivery("wh_1", delivery_id="msg_same", event_type="message.opened")
    b = delivery("wh_2", delivery_id="msg_same", event_type="message.clicked")
    store.put_webhook_delivery(a)
    store.put_webhook_delivery(b)
    assert store.get_webhook_delivery("acc_a", "wh_1", "msg_same") == a
    assert store.get_webhook_delivery("acc_a", "wh_2", "msg_same") == b


def _five_deliveries(store: Store, webhook_id: str = "wh_1") -> list[WebhookDelivery]:
    """Five deliveries, newest first: two share a created_at (then the larger id comes first)."""
    base = time.time() - 1000
    made = [
        delivery(webhook_id, delivery_id="msg_c", created_at=base + 1),
        delivery(webhook_id, delivery_id="msg_a", created_at=base + 5),
        delivery(webhook_id, delivery_id="msg_e", created_at=base + 3),
        delivery(webhook_id, delivery_id="msg_b", created_at=base + 3),
        delivery(webhook_id, delivery_id="msg_d", created_at=base + 2),
    ]
    for d in made:
        store.put_webhook_delivery(d)
    return sorted(made, key=lambda d: (d.created_at, d.id), reverse=True)


def test_list_deliveries_newest_first_then_by_id(store: Store) -> None:
    newest_first = _five_deliveries(store)
    listed, more = store.list_webhook_deliveries("acc_a", "wh_1", 10, None)
    assert [d.id for d in listed] == ["msg_a", "msg_e", "msg_b", "msg_d", "msg_c"]
    assert listed == newest_first and more is False


def test_list_deliveries_pages_with_limit_cursor_and_has_more(store: Store) -> None:
    _five_deliveries(store)
    page, more = store.list_webhook_deliveries("acc_a", "wh_1", 2, None)
    assert [d.id for d in page] == ["msg_a", "msg_e"] and more is True
    page, more = store.list_webhook_deliveries("acc_a", "wh_1", 2, "msg_e")
    assert [d.id for d in page] == ["msg_b", "msg_d"] and more is True
    page, more = store.list_webhook_deliveries("acc_a", "wh_1", 2, "msg_d")
    assert [d.id for d in page] == ["msg_c"] and more is False
    page, more = store.list_webhook_deliveries("acc_a", "wh_1", 1, "msg_d")
    assert [d.id for d in page] == ["msg_c"] and more is False
    assert store.list_webhook_deliveries("acc_a", "wh_1", 2, "msg_c") == ([], False)


def test_list_deliveries_is_scoped_by_webhook_and_account(store: Store) -> None:
    mine = _five_deliveries(store, "wh_1")
    store.put_webhook_delivery(delivery("wh_2"))
    store.put_webhook_delivery(delivery("wh_1", account_id="acc_b"))
    listed, more = store.list_webhook_deliveries("acc_a", "wh_1", 10, None)
    assert listed == mine and more is False
    assert len(store.list_webhook_deliveries("acc_a", "wh_2", 10, None)[0]) == 1
    assert len(store.list_webhook_deliveries("acc_b", "wh_1", 10, None)[0]) == 1
    assert store.list_webhook_deliveries("acc_b", "wh_2", 10, None) == ([], False)


def test_expired_deliveries_are_neither_listed_nor_found(store: Store) -> None:
    now = time.time()
    live = delivery("wh_1", delivery_id="msg_live", created_at=now - 10, expires_at=now + 3600)
    old = delivery("wh_1", delivery_id="msg_old", created_at=now - 5, expires_at=now - 1)
    older = delivery("wh_1", delivery_id="msg_older", created_at=now - 20, expires_at=now - 100)
    for d in (live, old, older):
        store.put_webhook_delivery(d)
    assert store.get_webhook_delivery("acc_a", "wh_1", "msg_old") is None
    assert store.get_webhook_delivery("acc_a", "wh_1", "msg_live") == live
    # the expired ones do not count towards the limit nor towards has_more
    assert store.list_webhook_deliveries("acc_a", "wh_1", 1, None) == ([live], False)
    assert store.list_webhook_deliveries("acc_a", "wh_1", 10, None) == ([live], False)

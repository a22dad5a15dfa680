"""Contract of the Scheduler port (ports.Scheduler): one named schedule per job, fired at least once
(it stays due until deleted), replaceable and cancellable."""

from __future__ import annotations

from typing import Any

from mailsage.ports import Scheduler

AT = 1_900_000_000.0  # a fixed future instant; due() takes "now" explicitly, so no waiting


def payload(job: str = "job_1") -> dict[str, Any]:
    return {"account_id": "acc_a", "job_id": job, "chunk": 0, "kind": "start"}


def test_schedule_is_not_due_before_its_time(scheduler: Scheduler) -> None:
    # Given a schedule at AT
    scheduler.schedule("job_1", AT, payload())
    # When asking what is due just before / Then nothing is
    assert scheduler.due(AT - 1) == []


def test_schedule_is_due_at_its_time(scheduler: Scheduler) -> None:
    # Given a schedule at AT
    scheduler.schedule("job_1", AT, payload())
    # When asking what is due at exactly AT / Then it is, with its payload
    assert scheduler.due(AT) == [("job_1", payload())]


def test_schedule_is_due_after_its_time(scheduler: Scheduler) -> None:
    # Given a schedule at AT
    scheduler.schedule("job_1", AT, payload())
    # When asking what is due later / Then it is, with its payload
    assert scheduler.due(AT + 3600) == [("job_1", payload())]


def test_due_lists_only_the_schedules_that_are_due(scheduler: Scheduler) -> None:
    # Given one schedule due and one still in the future
    scheduler.schedule("job_1", AT, payload("job_1"))
    scheduler.schedule("job_2", AT + 60, payload("job_2"))
    # When asking what is due in between / Then only the first is
    assert scheduler.due(AT + 30) == [("job_1", payload("job_1"))]


def test_due_does_not_remove_the_schedule(scheduler: Scheduler) -> None:
    # Given a schedule that was reported due (fired)
    scheduler.schedule("job_1", AT, payload())
    scheduler.due(AT)
    # When asking again, as after a crash before the delete / Then it is still due (at least once)
    assert scheduler.due(AT + 1) == [("job_1", payload())]


def test_deleted_schedule_is_no_longer_due(scheduler: Scheduler) -> None:
    # Given a schedule that fired
    scheduler.schedule("job_1", AT, payload())
    scheduler.due(AT)
    # When it is deleted
    deleted = scheduler.delete("job_1")
    # Then the call reports it and it is never due again
    assert deleted is True
    assert scheduler.due(AT + 3600) == []


def test_delete_is_true_once_then_false(scheduler: Scheduler) -> None:
    # Given a pending schedule
    scheduler.schedule("job_1", AT, payload())
    # When it is deleted twice / Then only the first delete found it
    assert scheduler.delete("job_1") is True
    assert scheduler.delete("job_1") is False


def test_delete_unknown_schedule_is_false(scheduler: Scheduler) -> None:
    # Given another schedule
    scheduler.schedule("job_1", AT, payload())
    # When an unknown name is deleted / Then nothing was, and the other one is untouched
    assert scheduler.delete("job_2") is False
    assert scheduler.due(AT) == [("job_1", payload())]


def test_scheduling_the_same_name_again_replaces_it(scheduler: Scheduler) -> None:
    # Given a schedule at AT
    scheduler.schedule("job_1", AT, payload("old"))
    # When the same name is scheduled later with another payload
    scheduler.schedule("job_1", AT + 60, {"job_id": "new", "nested": {"n": [1, 2]}})
    # Then it is no longer due at the old time, and due once, with the new payload, at the new time
    assert scheduler.due(AT) == []
    assert scheduler.due(AT + 60) == [("job_1", {"job_id": "new", "nested": {"n": [1, 2]}})]

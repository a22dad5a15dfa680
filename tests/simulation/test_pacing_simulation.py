"""Sending within SES's limits at the scale of the problem: the stack's 10 senders, on virtual
time, against a fake SES that throttles as SES does. Each test runs in seconds of real time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mailsage.domain.models import EventType, JobState
from tests.simulation.harness import Simulation

pytestmark = pytest.mark.simulation

Simulate = Callable[..., Simulation]
ACCOUNT, OTHER = "acct_a", "acct_b"


def achieved_rate(sim: Simulation, since: float) -> float:
    """Messages SES accepted per second of virtual time, from `since` to the last one."""
    return len(sim.ses.accepted) / (sim.ses.accepted[-1].at - since)


@pytest.fixture(scope="module")
def fifty_thousand(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A database holding a submitted job of 50,000 recipients (submitting takes seconds: once)."""
    directory = tmp_path_factory.mktemp("seed")
    sim = Simulation(directory, rate=1.0)
    job_id = sim.submit(ACCOUNT, 50_000)
    sim.save(directory / "seed.sqlite3")
    sim.close()
    return directory / "seed.sqlite3", job_id


@pytest.mark.parametrize("rate", [14.0, 200.0])
def test_fifty_thousand_recipients_go_out_at_the_quota_and_none_fail(
    simulate: Simulate, fifty_thousand: tuple[Path, str], rate: float
) -> None:
    # Given the stack's 10 senders, an SES account allowing `rate` messages a second, and a job
    # of 50,000 recipients submitted (on the same virtual clock)
    seed, job_id = fifty_thousand
    sim = simulate(rate=rate, seed=seed)
    start = sim.time()
    # When they drain it
    sim.run_until(None)
    # Then every message is sent, exactly once at SES, nothing failed or was dead-lettered,
    # and the quota was used to at least 90%
    job = sim.job(ACCOUNT, job_id)
    assert job.state is JobState.COMPLETED
    assert job.counts == {"sent": 50_000}
    accepted = [a.message_id for a in sim.ses.accepted]
    assert len(accepted) == len(set(accepted)) == 50_000
    assert sim.errors == [] and sim.queue.dead_letters() == []
    rate_achieved = achieved_rate(sim, start)
    print(f"\n{rate:g}/s: achieved {rate_achieved:.2f}/s, {sim.ses.throttles} throttles at SES")
    assert rate_achieved >= 0.9 * rate


def test_a_daily_quota_used_up_mid_job_parks_it_and_it_resumes_when_the_window_allows(
    simulate: Simulate,
) -> None:
    # Given an SES account that may send 1,000 messages in 24 hours, and a job of 1,500
    sim = simulate(rate=14.0, max_24_hour_send=1_000)
    start = sim.time()
    job_id = sim.submit(ACCOUNT, 1_500)
    # When the quota runs out (after about 72 s) and an hour passes
    sim.run_until(3_600)
    # Then the job is parked with its reason, announced, and nothing failed
    job = sim.job(ACCOUNT, job_id)
    assert job.state is JobState.PAUSED and job.paused_reason == "daily_quota"
    assert job.counts == {"sent": 1_000, "queued": 500}
    paused = sim.events.of(EventType.JOB_PAUSED, job_id)
    assert [e.data.get("paused_reason") for e in paused] == ["daily_quota"]
    # When the rolling window frees the first sends, without anyone doing anything
    sim.run_until(None)
    # Then it resumed and completed, no message failed, and nothing went out over the quota
    job = sim.job(ACCOUNT, job_id)
    assert job.state is JobState.COMPLETED and job.counts == {"sent": 1_500}
    assert len(sim.events.of(EventType.JOB_RESUMED, job_id)) == 1
    first_after_quota = sim.ses.accepted[1_000].at
    assert first_after_quota >= sim.ses.accepted[0].at + 86_400
    assert first_after_quota - start < 86_400 + 3_600  # resumed within the hour the window allowed
    assert sim.errors == []


def test_sending_paused_parks_every_job_and_they_resume_after_a_person_resumes_sending(
    simulate: Simulate,
) -> None:
    # Given SES sending paused for the account until a person resumes it after two hours
    sim = simulate(rate=14.0)
    start = sim.time()
    sim.ses.paused_until = start + 7_200
    jobs = [(ACCOUNT, sim.submit(ACCOUNT, 500)), (OTHER, sim.submit(OTHER, 300))]
    # When the senders try for an hour
    sim.run_until(3_600)
    # Then every job is parked with the reason, announced, and nothing was sent or failed
    for account, job_id in jobs:
        job = sim.job(account, job_id)
        assert job.state is JobState.PAUSED and job.paused_reason == "sending_paused"
        assert set(job.counts) == {"queued"}
        assert len(sim.events.of(EventType.JOB_PAUSED, job_id)) == 1
    assert sim.ses.accepted == []
    # When sending is resumed (the pause ends) and the senders carry on
    sim.run_until(None)
    # Then both jobs resumed by themselves and completed, with every message sent once
    for account, job_id in jobs:
        job = sim.job(account, job_id)
        assert job.state is JobState.COMPLETED, job
        assert len(sim.events.of(EventType.JOB_RESUMED, job_id)) == 1
    accepted = [a.message_id for a in sim.ses.accepted]
    assert len(accepted) == len(set(accepted)) == 800
    assert min(a.at for a in sim.ses.accepted) >= start + 7_200
    assert sim.errors == []


def test_a_single_send_goes_out_before_the_rest_of_a_running_batch(simulate: Simulate) -> None:
    # Given a batch of 20,000 recipients draining at 14/s for a minute
    sim = simulate(rate=14.0)
    batch_id = sim.submit(ACCOUNT, 20_000)
    sim.run_until(60)
    accepted_before = len(sim.ses.accepted)
    submitted_at = sim.time()
    # When a single send is accepted and the senders carry on
    send_id = sim.submit(ACCOUNT, 1, kind="send")
    sim.run_until(None)
    # Then it reached SES within seconds, ahead of the batch's remaining chunks (at most the
    # slots the senders already held went first)
    order = sim.sent_order()
    position = order.index(send_id)
    assert 0 < accepted_before <= position <= accepted_before + 100  # position counts from 0
    assert sim.ses.accepted[position].at - submitted_at < 5.0
    assert order.count(batch_id) == 20_000
    assert sim.job(ACCOUNT, batch_id).counts == {"sent": 20_000}


def test_two_accounts_campaigns_share_the_rate(simulate: Simulate) -> None:
    # Given two accounts each starting a campaign of 5,000 recipients at 14/s
    sim = simulate(rate=14.0)
    first = sim.submit(ACCOUNT, 5_000, campaign="spring")
    second = sim.submit(OTHER, 5_000, campaign="launch")
    # When the senders drain them
    sim.run_until(None)
    # Then while both were sending, each got 40-60% of the rate, and both completed
    order = sim.sent_order()
    both_active = min(len(order) - order[::-1].index(job) for job in (first, second))
    share = order[:both_active].count(first) / both_active
    print(f"\nfirst account's share while both sent: {share:.1%} of {both_active} messages")
    assert 0.4 <= share <= 0.6
    assert sim.job(ACCOUNT, first).counts == {"sent": 5_000}
    assert sim.job(OTHER, second).counts == {"sent": 5_000}

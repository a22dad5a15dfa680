"""One line per job milestone (accepted, paused, resumed, stopped, completed) on the logger
"mailsage.jobs". Off unless asked for: `mailsage serve` turns them on for its console, beside the
request lines. On Lambda the runtime's root logger may be at INFO, and a line per job would be paid
for in log ingestion; the structured logs and metrics tell the story there."""

from __future__ import annotations

import logging

from mailsage.domain.models import Job

jobs_log = logging.getLogger("mailsage.jobs")
jobs_log.setLevel(logging.WARNING)


def milestone(job: Job, what: str) -> None:
    if not jobs_log.isEnabledFor(logging.INFO):
        return
    counts = ", ".join(f"{status} {n}" for status, n in sorted(job.counts.items()) if n)
    campaign = f" (campaign {job.campaign_id})" if job.campaign_id else ""
    jobs_log.info(
        "job %s%s %s: %d messages%s", job.id, campaign, what, job.total, f"; {counts}" if counts else ""
    )

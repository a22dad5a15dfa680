"""CampaignStore on SQLite: totals over an account's jobs with one campaign id, read from the
messages' status and engagement counters (no separate counters to keep in step)."""

from __future__ import annotations

from mailsage.adapters.sqlite.base import SqliteTables
from mailsage.domain.models import CampaignStats


class SqliteCampaigns(SqliteTables):
    def campaign_stats(self, account_id: str, campaign_id: str) -> CampaignStats | None:
        conn = self.db.connection()
        jobs = conn.execute(
            "SELECT count(*) FROM jobs WHERE account_id = ? AND campaign_id = ?", (account_id, campaign_id)
        ).fetchone()[0]
        if not jobs:
            return None
        rows = conn.execute(
            "SELECT m.status, count(*), sum(m.open_count > 0), sum(m.click_count > 0),"
            " sum(m.unsubscribe_count > 0) FROM jobs j JOIN messages m ON m.job_id = j.id"
            " WHERE j.account_id = ? AND j.campaign_id = ? GROUP BY m.status",
            (account_id, campaign_id),
        ).fetchall()
        return CampaignStats(
            campaign_id=campaign_id,
            jobs=jobs,
            counts={r[0]: r[1] for r in rows},
            opened=sum(r[2] for r in rows),
            clicked=sum(r[3] for r in rows),
            unsubscribed=sum(r[4] for r in rows),
        )

"""Campaign statistics: totals over a campaign's jobs."""

from __future__ import annotations

from collections import Counter

from mailsage.adapters.aws.dynamodb.keys import CAMPAIGN_PREFIX, CHUNK_PREFIX, HEAD_SK, Item
from mailsage.adapters.aws.dynamodb.reads import Reads
from mailsage.adapters.aws.dynamodb.records import counts_of
from mailsage.domain.models import ENGAGEMENT_KINDS, CampaignStats, EngagementKind


class Campaigns(Reads):
    """CampaignStore on the table."""

    def campaign_stats(self, account_id: str, campaign_id: str) -> CampaignStats | None:
        """Query the campaign's entries (one per job), then per job its head and chunk states (one
        Query each, 4 in parallel): a job counts only if its head is visible (committed, not
        expired) and carries this campaign id. Engagement comes from the entries' counters."""
        entries = [
            entry
            for entry in self._query(
                "#pk = :pk AND begins_with(#sk, :prefix)",
                {":pk": f"ACCOUNT#{account_id}", ":prefix": f"{CAMPAIGN_PREFIX}{campaign_id}#"},
                consistent=True,
            )
            if entry["campaign_id"] == campaign_id  # `a#b` also begins with `a#`
        ]

        def job_counts(entry: Item) -> dict[str, int] | None:
            items = self._job_items(entry["job_id"], CHUNK_PREFIX, HEAD_SK)
            head = self._visible_head(items.pop(HEAD_SK, None), account_id)
            if head is None or head.get("campaign_id") != campaign_id:
                return None
            return counts_of(items.values())

        counted = [
            (entry, counts)
            for entry, counts in zip(entries, self._in_parallel(job_counts, entries), strict=True)
            if counts is not None
        ]
        if not counted:
            return None
        totals: Counter[str] = Counter()
        for _, counts in counted:
            totals.update(counts)
        engaged = {kind: sum(int(entry.get(kind, 0)) for entry, _ in counted) for kind in ENGAGEMENT_KINDS}
        return CampaignStats(
            campaign_id=campaign_id,
            jobs=len(counted),
            counts=dict(totals),
            opened=engaged[EngagementKind.OPENED],
            clicked=engaged[EngagementKind.CLICKED],
            unsubscribed=engaged[EngagementKind.UNSUBSCRIBED],
        )

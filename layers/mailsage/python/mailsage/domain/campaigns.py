"""Campaign statistics: totals over every job of an account that carries one campaign id.

Definitions (also in the README and the OpenAPI descriptions):
- recipients: every message of the campaign's jobs;
- sent: messages a provider accepted or bounced, i.e. in status sent, delivered, deferred,
  bounced or complained;
- delivered: delivered + complained (a complaint comes from a delivered message);
- bounced, complained, failed, suppressed: messages in that status;
- queued: messages still waiting to be sent (queued, scheduled or sending);
- opened, clicked, unsubscribed: messages opened / clicked / unsubscribed at least once;
- rates: delivery = delivered / sent, bounce = bounced / sent, complaint = complained / sent,
  open = opened / delivered, click = clicked / delivered, unsubscribe = unsubscribed / delivered;
  rounded to 4 decimal places, 0.0 when the denominator is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsage.domain.models import MESSAGE_UNSENT, CampaignStats, MessageStatus
from mailsage.errors import NotFound
from mailsage.ports import CampaignStore

SENT_STATUSES = (
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.DEFERRED,
    MessageStatus.BOUNCED,
    MessageStatus.COMPLAINED,
)
DELIVERED_STATUSES = (MessageStatus.DELIVERED, MessageStatus.COMPLAINED)


def rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


@dataclass(slots=True, frozen=True)
class CampaignRates:
    delivery_rate: float
    bounce_rate: float
    complaint_rate: float
    open_rate: float
    click_rate: float
    unsubscribe_rate: float


@dataclass(slots=True, frozen=True)
class CampaignReport:
    campaign_id: str
    jobs: int
    recipients: int
    queued: int
    sent: int
    delivered: int
    bounced: int
    complained: int
    failed: int
    suppressed: int
    opened: int
    clicked: int
    unsubscribed: int
    rates: CampaignRates


def report(stats: CampaignStats) -> CampaignReport:
    counts = stats.counts

    def count(*statuses: MessageStatus) -> int:
        return sum(int(counts.get(s.value, 0)) for s in statuses)

    sent = count(*SENT_STATUSES)
    delivered = count(*DELIVERED_STATUSES)
    bounced = count(MessageStatus.BOUNCED)
    complained = count(MessageStatus.COMPLAINED)
    return CampaignReport(
        campaign_id=stats.campaign_id,
        jobs=stats.jobs,
        recipients=sum(int(n) for n in counts.values()),
        queued=count(*MESSAGE_UNSENT),
        sent=sent,
        delivered=delivered,
        bounced=bounced,
        complained=complained,
        failed=count(MessageStatus.FAILED),
        suppressed=count(MessageStatus.SUPPRESSED),
        opened=stats.opened,
        clicked=stats.clicked,
        unsubscribed=stats.unsubscribed,
        rates=CampaignRates(
            delivery_rate=rate(delivered, sent),
            bounce_rate=rate(bounced, sent),
            complaint_rate=rate(complained, sent),
            open_rate=rate(stats.opened, delivered),
            click_rate=rate(stats.clicked, delivered),
            unsubscribe_rate=rate(stats.unsubscribed, delivered),
        ),
    )


class CampaignService:
    def __init__(self, campaigns: CampaignStore) -> None:
        self.campaigns = campaigns

    def stats(self, account_id: str, campaign_id: str) -> CampaignReport:
        """The campaign's totals; NotFound if the account has no job with this campaign id."""
        stats = self.campaigns.campaign_stats(account_id, campaign_id)
        if stats is None or stats.jobs == 0:
            raise NotFound(f"campaign {campaign_id!r} not found")
        return report(stats)

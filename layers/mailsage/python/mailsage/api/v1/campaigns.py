"""`/api/v1/campaigns/{campaign_id}`: totals and rates over every job of the account that carries
the campaign id (`mailsage.domain.campaigns` defines each number)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import Field

from mailsage.api.dependencies import AccountId, Campaigns
from mailsage.api.model import Model
from mailsage.api.v1.models import responses
from mailsage.domain.campaigns import CampaignReport

DESCRIPTION = """Totals over every job of the account sent with this `campaign_id`, counted in messages
(one per recipient):

- `recipients`: every message; `queued`: still queued, scheduled or sending;
- `sent`: accepted by a provider or bounced (status sent, delivered, deferred, bounced or complained);
- `delivered`: delivered + complained (a complaint comes from a delivered message);
- `bounced`, `complained`, `failed`, `suppressed`: messages in that status;
- `opened`, `clicked`, `unsubscribed`: messages opened, clicked, unsubscribed at least once;
- `rates`: delivery = delivered / sent, bounce = bounced / sent, complaint = complained / sent,
  open = opened / delivered, click = clicked / delivered, unsubscribe = unsubscribed / delivered;
  rounded to 4 decimal places, 0.0 when the denominator is 0.

A campaign id the account never used (or another account's) is 404."""

router = APIGatewayRouter()


class CampaignRatesReply(Model):
    delivery_rate: float = Field(description="delivered / sent")
    bounce_rate: float = Field(description="bounced / sent")
    complaint_rate: float = Field(description="complained / sent")
    open_rate: float = Field(description="opened / delivered")
    click_rate: float = Field(description="clicked / delivered")
    unsubscribe_rate: float = Field(description="unsubscribed / delivered")


class CampaignReply(Model):
    """Totals over the campaign's jobs; counts are of messages (one per recipient)."""

    campaign_id: str
    jobs: int = Field(description="Jobs (sends and batches) with this campaign id.")
    recipients: int = Field(description="Every message of those jobs.")
    queued: int = Field(description="Still waiting to be sent: queued, scheduled or sending.")
    sent: int = Field(
        description="Accepted by a provider or bounced: status sent, delivered, deferred, bounced or complained."
    )
    delivered: int = Field(description="delivered + complained (a complaint comes from a delivered message).")
    bounced: int
    complained: int
    failed: int
    suppressed: int
    opened: int = Field(description="Messages opened at least once (open tracking).")
    clicked: int = Field(description="Messages with at least one tracked click.")
    unsubscribed: int = Field(description="Messages whose one-click unsubscribe was used.")
    rates: CampaignRatesReply = Field(
        description="Fractions between 0 and 1, rounded to 4 decimal places; 0.0 when the denominator is 0."
    )


def campaign_reply(r: CampaignReport) -> CampaignReply:
    return CampaignReply(
        campaign_id=r.campaign_id,
        jobs=r.jobs,
        recipients=r.recipients,
        queued=r.queued,
        sent=r.sent,
        delivered=r.delivered,
        bounced=r.bounced,
        complained=r.complained,
        failed=r.failed,
        suppressed=r.suppressed,
        opened=r.opened,
        clicked=r.clicked,
        unsubscribed=r.unsubscribed,
        rates=CampaignRatesReply(
            delivery_rate=r.rates.delivery_rate,
            bounce_rate=r.rates.bounce_rate,
            complaint_rate=r.rates.complaint_rate,
            open_rate=r.rates.open_rate,
            click_rate=r.rates.click_rate,
            unsubscribe_rate=r.rates.unsubscribe_rate,
        ),
    )


@router.get(
    "/<campaign_id>",
    responses=responses(200, CampaignReply, 400, 404),
    summary="Campaign statistics",
    description=DESCRIPTION,
)
def get_campaign(
    campaign_id: Annotated[str, Path(min_length=1, max_length=128)],
    campaigns: Campaigns,
    account_id: AccountId,
) -> CampaignReply:
    return campaign_reply(campaigns.stats(account_id, campaign_id))

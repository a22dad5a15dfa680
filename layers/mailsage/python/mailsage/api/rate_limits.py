"""The per-account request limit at the API edge: the gate counts each authenticated request
(`mailsage.domain.rate_limits`) and refuses one over the limit with 429; every reply to a counted
request carries the limit in the RateLimit fields of draft-ietf-httpapi-ratelimit-headers-11
(structured fields):

    RateLimit-Policy: "account";q=40;w=2     the bucket: 40 requests, full again 2 s after empty
    RateLimit: "account";r=39;t=1            39 left now; full again in 1 s (a 429: r=0, t=Retry-After)

Unauthenticated requests (401), requests refused before the key is read (413, 415), another
account's path (403) and the public /t and /u routes are not counted.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from mailsage.domain.rate_limits import AccountRateLimiter, Quota
from mailsage.errors import RateLimited

POLICY_NAME = "account"
QUOTA = "mailsage_quota"  # key of the app's context: this request's Quota, once counted
# What a browser's script may read of a reply (CORS).
EXPOSED_HEADERS = ["RateLimit", "RateLimit-Policy", "Retry-After"]


def headers(quota: Quota) -> dict[str, str]:
    """The RateLimit-Policy and RateLimit fields of a reply."""
    policy = quota.policy
    return {
        "RateLimit-Policy": f'"{POLICY_NAME}";q={policy.burst};w={policy.window}',
        "RateLimit": f'"{POLICY_NAME}";r={quota.remaining};t={quota.reset_seconds}',
    }


def admit(app: APIGatewayRestResolver, limiter: AccountRateLimiter | None, account_id: str) -> None:
    """Count this request of `account_id` (at most once, should the gate run again for it); raise
    RateLimited over the limit. The quota stays on the app's context for the reply's headers."""
    if limiter is None or QUOTA in app.context:
        quota = app.context.get(QUOTA)
    else:
        quota = limiter.admit(account_id)
        app.append_context(**{QUOTA: quota})
    if quota is not None and not quota.allowed:
        raise RateLimited(
            f"too many requests for this account: the limit is {_rate(quota)} requests a second"
            f" ({quota.policy.burst} at once); retry after {quota.retry_after} s",
            retry_after=quota.retry_after,
            quota=quota,
        )


def reply_headers(app: APIGatewayRestResolver) -> dict[str, str]:
    """The RateLimit fields for the reply to this request ({} when it was not counted)."""
    quota = app.context.get(QUOTA)
    return headers(quota) if isinstance(quota, Quota) else {}


def _rate(quota: Quota) -> str:
    return f"{quota.policy.rate:g}"

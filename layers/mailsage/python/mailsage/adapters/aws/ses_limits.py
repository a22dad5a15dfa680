"""The SES route's limits, read from SES v2 GetAccount (SendQuota) and kept for a few minutes.

The sending rate is SES's MaxSendRate, lowered by the `ses_max_rate` setting. When SES cannot be
asked (no ses:GetAccount permission, no network, an emulator without GetAccount) the last rate it gave is kept; before it has given
one, the setting is used, else 1 message a second (the SES sandbox's rate): too slow is safe, too
fast is throttled. Each failed refresh is logged once and tried again a minute later.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from mailsage.domain.clock import Clock, system_clock
from mailsage.domain.pacing import RouteLimit

log = logging.getLogger(__name__)

REFRESH_SECONDS = 300.0  # how long SES's answer is used before it is asked again
RETRY_SECONDS = 60.0  # after a failed refresh
SANDBOX_RATE = 1.0  # messages per second of an SES account in the sandbox


@dataclass(frozen=True, slots=True)
class SesQuota:
    """What SES says the account may send (GetAccount). Max24HourSend is -1 when unlimited."""

    max_send_rate: float
    max_24_hour_send: float
    sent_last_24_hours: float
    sending_enabled: bool
    production_access_enabled: bool

    @classmethod
    def from_account(cls, account: dict[str, Any]) -> SesQuota:
        quota = account.get("SendQuota") or {}
        return cls(
            max_send_rate=float(quota.get("MaxSendRate") or 0.0),
            max_24_hour_send=float(quota.get("Max24HourSend") or 0.0),
            sent_last_24_hours=float(quota.get("SentLast24Hours") or 0.0),
            sending_enabled=bool(account.get("SendingEnabled", False)),
            production_access_enabled=bool(account.get("ProductionAccessEnabled", False)),
        )


def read_quota(client: Any) -> SesQuota:
    """The account's quota now, from an sesv2 client (raises what the client raises)."""
    return SesQuota.from_account(client.get_account())


class SesLimits:
    """The SES route's `RouteLimit`, refreshed from GetAccount every REFRESH_SECONDS (thread-safe)."""

    def __init__(self, max_rate: float | None = None, client: Any | None = None, clock: Clock = system_clock):
        self.max_rate = max_rate
        self.clock = clock
        self._client = client
        self._quota: SesQuota | None = None
        self._due = 0.0  # when SES is asked next
        self._lock = threading.Lock()

    def __call__(self) -> RouteLimit:
        return RouteLimit(rate=self.rate())

    def rate(self) -> float:
        quota = self.quota()
        known = quota.max_send_rate if quota and quota.max_send_rate > 0 else None
        if known is None:
            return self.rate_without_ses()
        return min(known, self.max_rate) if self.max_rate else known

    def quota(self) -> SesQuota | None:
        """SES's last answer (asked again when it is older than REFRESH_SECONDS); None before any."""
        with self._lock:
            now = self.clock()
            if now >= self._due:
                self._refresh(now)
            return self._quota

    def _refresh(self, now: float) -> None:
        try:
            self._quota = read_quota(self.client())
            self._due = now + REFRESH_SECONDS
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, sending goes on at a known rate
            self._due = now + RETRY_SECONDS
            then = "keeping its last answer" if self._quota else f"pacing at {self.rate_without_ses()}/s"
            log.warning("SES GetAccount failed, %s until it answers: %s", then, exc)

    def rate_without_ses(self) -> float:
        """The rate before SES has told its own: the setting, else the sandbox's."""
        return self.max_rate or SANDBOX_RATE

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Short timeouts: every sender of this process waits while the quota is read.
            config = Config(
                connect_timeout=5, read_timeout=5, retries={"mode": "standard", "max_attempts": 2}
            )
            self._client = boto3.client("sesv2", config=config)
        return self._client

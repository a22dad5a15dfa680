"""A boto3-shaped `sesv2` client that enforces SES's sending limits on virtual time.

- Maximum send rate: a token bucket refilled at MaxSendRate. SES does not publish its bucket's
  size; this one holds one second of the rate (capacity = MaxSendRate), which is what SES is
  generally observed to allow as a burst. An empty bucket answers as SES does:
  `TooManyRequestsException`, "Maximum sending rate exceeded."
- Max24HourSend (optional): sends are counted over a rolling 24 hours of virtual time; past it,
  "Daily message quota exceeded." (`daily_quota_code`: SES v1 answers with `Throttling`).
- Sending paused: `SendingPausedException` until `paused_until` (a person resumes sending then).
Every call takes `latency` of virtual time, as a round trip to SES would.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

DAY_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True)
class Accepted:
    at: float
    recipient: str
    job_id: str
    message_id: str


@dataclass
class FakeSes:
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    max_send_rate: float
    max_24_hour_send: int | None = None
    latency: float = 0.03
    paused_until: float | None = None  # SendingPausedException before this time
    daily_quota_code: str = "LimitExceededException"
    accepted: list[Accepted] = field(default_factory=list)
    throttles: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    _tokens: float = 0.0
    _refilled_at: float | None = None
    _last_day: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send_email(self, **request: Any) -> dict[str, Any]:
        self.sleep(self.latency)  # the round trip; the decision is taken at its end
        with self._lock:
            now = self.clock()
            if self.paused_until is not None and now < self.paused_until:
                self._refuse("SendingPausedException", "Sending is paused for this account.", 400)
            if self.max_24_hour_send is not None:
                while self._last_day and self._last_day[0] <= now - DAY_SECONDS:
                    self._last_day.popleft()
                if len(self._last_day) >= self.max_24_hour_send:
                    self._refuse(self.daily_quota_code, "Daily message quota exceeded.", 400)
            if not self._take(now):
                self.throttles += 1
                self._refuse("TooManyRequestsException", "Maximum sending rate exceeded.", 429)
            self._last_day.append(now)
            tags = {t["Name"]: t["Value"] for t in request.get("EmailTags", [])}
            message_id = f"ses-{len(self.accepted)}"
            self.accepted.append(
                Accepted(
                    now, request["Destination"]["ToAddresses"][0], tags.get("job_id", ""), tags["message_id"]
                )
            )
        return {"MessageId": message_id}

    def _take(self, now: float) -> bool:
        capacity = self.max_send_rate  # one second of burst (see the module's docstring)
        if self._refilled_at is None:
            self._tokens, self._refilled_at = capacity, now
        self._tokens = min(capacity, self._tokens + (now - self._refilled_at) * self.max_send_rate)
        self._refilled_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _refuse(self, code: str, message: str, status: int) -> None:
        self.refusals[code] = self.refusals.get(code, 0) + 1
        raise ClientError(
            {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
            "SendEmail",
        )

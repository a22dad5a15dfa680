"""The sandbox transport: goes through the whole pipeline but never leaves the process. Each
message ends in the outcome asked for; nothing reaches an SMTP relay or SES."""

from __future__ import annotations

import uuid
from typing import Literal

from mailsage.errors import PermanentSendError, TransientSendError

Outcome = Literal["deliver", "bounce", "defer", "fail", "suppress"]


class SandboxSession:
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome

    def send(
        self, sender: str, recipient: str, data: bytes, tags: dict[str, str] | None = None
    ) -> str | None:
        if self.outcome == "defer":
            raise TransientSendError("sandbox: deferred as asked (sandbox_result=defer)")
        if self.outcome == "fail":
            raise PermanentSendError("sandbox: failed as asked (sandbox_result=fail)")
        # deliver, bounce and suppress are accepted here; bounce and suppress are outcomes reported
        # after acceptance, applied by the caller that asked for them.
        return f"sandbox-{uuid.uuid4().hex}"

    def close(self) -> None:
        pass


class SandboxTransport:
    def __init__(self, outcome: Outcome = "deliver") -> None:
        self.outcome = outcome

    def open(self) -> SandboxSession:
        return SandboxSession(self.outcome)

"""The transport port: how a rendered message leaves (SMTP relay, SES, sandbox)."""

from __future__ import annotations

from typing import Protocol


class TransportSession(Protocol):
    def send(
        self, sender: str, recipient: str, data: bytes, tags: dict[str, str] | None = None
    ) -> str | None:
        """Send one message; returns the provider's id if any. `tags` (account_id, job_id,
        message_id) travel with the message where the provider supports it (SES message tags), so
        its delivery events can be matched back. Raises TransientSendError or PermanentSendError."""

    def close(self) -> None: ...


class Transport(Protocol):
    def open(self) -> TransportSession:
        """One session per chunk: SMTP reuses one connection for every message of the chunk."""

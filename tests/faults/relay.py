"""A fault relay: an aiosmtpd server on 127.0.0.1 that keeps count of what it received and can be
told to misbehave, as a relay on a bad day does.

It counts, per recipient, every DATA command it was offered (an attempt, whatever became of it),
and per Message-ID every message it took in: a Message-ID seen twice is a duplicate send. Faults,
each on a fraction of DATA commands (drawn from a seeded random, so a run can be repeated):
- `drop_before_data`: the connection is cut when DATA arrives, before the message is read;
- `drop_after_data`: the message is read in full, then the connection is cut before the reply.
  The relay has the message but the sender cannot know: the one case where a duplicate is allowed;
- `defer`: the message is read and answered 451 (a transient refusal);
and `delay_seconds` before every reply to a message (a slow relay).
"""

from __future__ import annotations

import asyncio
import collections
import random
import threading
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


class FaultRelay:
    def __init__(self, port: int, seed: int = 14) -> None:
        self.port = port
        self.drop_before_data = 0.0
        self.drop_after_data = 0.0
        self.defer = 0.0
        self.delay_seconds = 0.0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.attempts: collections.Counter[str] = collections.Counter()  # recipient -> DATA commands
        self.received: collections.Counter[str] = (
            collections.Counter()
        )  # Message-ID local part -> times taken in
        self.dropped_after: collections.Counter[str] = collections.Counter()  # Message-ID -> cut after data
        self.recipient_of: dict[str, str] = {}  # Message-ID -> recipient
        self._controller = _Controller(self, hostname="127.0.0.1", port=port)

    def start(self) -> FaultRelay:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    # -- what the tests read ---------------------------------------------------------------------
    def unique(self) -> set[str]:
        with self._lock:
            return set(self.received)

    def duplicates(self) -> dict[str, int]:
        """Message-ID -> extra copies received."""
        with self._lock:
            return {mid: n - 1 for mid, n in self.received.items() if n > 1}

    def total_received(self) -> int:
        with self._lock:
            return sum(self.received.values())

    def attempted(self) -> set[str]:
        with self._lock:
            return set(self.attempts)

    # -- the server's side -------------------------------------------------------------------------
    def _draw(self, fraction: float) -> bool:
        return fraction > 0 and self._random.random() < fraction

    def on_data_command(self, recipients: list[str]) -> bool:
        """Count the attempt; True: cut the connection now, before reading the message."""
        with self._lock:
            for r in recipients:
                self.attempts[r.lower()] += 1
            return self._draw(self.drop_before_data)

    async def on_message(self, server: SMTP, envelope: Any) -> str:
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        data = envelope.original_content or envelope.content
        end = data.find(b"\r\n\r\n")
        headers = BytesHeaderParser(policy=compat32).parsebytes(data[:end] if end >= 0 else data)
        message_id = str(headers.get("Message-ID", "")).strip().strip("<>").split("@")[0]
        with self._lock:
            if self._draw(self.defer):
                return "451 4.3.0 try again later (fault relay)"
            drop = self._draw(self.drop_after_data)
            self.received[message_id] += 1
            self.recipient_of[message_id] = envelope.rcpt_tos[0].lower()
            if drop:
                self.dropped_after[message_id] += 1
        if drop:
            cut(server)  # the message is here; the sender never hears so
        return "250 2.0.0 accepted (fault relay)"


def cut(server: SMTP) -> None:
    """Drop the connection at once, without a reply."""
    transport = server.transport
    assert isinstance(transport, asyncio.Transport)
    transport.abort()


class _Handler:
    def __init__(self, relay: FaultRelay) -> None:
        self.relay = relay

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        return await self.relay.on_message(server, envelope)


class _FaultySMTP(SMTP):
    def __init__(self, relay: FaultRelay, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.relay = relay

    async def smtp_DATA(self, arg: str) -> None:
        recipients = list(self.envelope.rcpt_tos) if self.envelope is not None else []
        if recipients and self.relay.on_data_command(recipients):
            cut(self)
            return
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def __init__(self, relay: FaultRelay, **kwargs: Any) -> None:
        self.relay = relay
        super().__init__(_Handler(relay), **kwargs)

    def factory(self) -> SMTP:
        return _FaultySMTP(self.relay, self.handler, **self.SMTP_kwargs)

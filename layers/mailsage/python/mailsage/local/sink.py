"""The built-in SMTP sink: accepts mail on 127.0.0.1 and keeps each message as an .eml file.

A recipient's local part can provoke a failure, so every outcome can be exercised without a real
relay: `bounce...@` is refused with 550 (permanent), `defer...@` with 451 (transient).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any


class OutboxHandler:
    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        outbox.mkdir(parents=True, exist_ok=True)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        local = address.split("@", 1)[0].lower()
        if local.startswith("bounce"):
            return "550 5.1.1 mailbox unavailable (sink: bounce)"
        if local.startswith("defer"):
            return "451 4.3.0 try again later (sink: defer)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        tmp = self.outbox / f".{name}.tmp"
        # Written under a temporary name and renamed, so a reader never sees half a message.
        tmp.write_bytes(envelope.original_content or envelope.content)
        os.replace(tmp, self.outbox / f"{name}.eml")
        return "250 2.0.0 accepted"


class SmtpSink:
    def __init__(self, outbox: Path, port: int, host: str = "127.0.0.1") -> None:
        from aiosmtpd.controller import Controller

        self.outbox = outbox
        self.controller = Controller(OutboxHandler(outbox), hostname=host, port=port, ready_timeout=10)

    @property
    def port(self) -> int:
        return self.controller.port

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def messages(self) -> list[Path]:
        return sorted(self.outbox.glob("*.eml"))

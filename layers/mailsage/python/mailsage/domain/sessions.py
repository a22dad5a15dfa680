"""The transport sessions of one chunk's delivery: one per provider, opened on first use and reused
for every message (one SMTP connection per chunk), within the provider's connection limit."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from mailsage.domain.pacing import Pacer
from mailsage.domain.providers import Providers
from mailsage.errors import TransientSendError
from mailsage.ports import Transport, TransportSession

SANDBOX_ROUTE = "sandbox:"  # + the outcome: a route the sessions resolve to the sandbox transport
# The sandbox transport of an outcome (deliver, bounce, defer, fail, suppress): given by wiring, so
# that the domain names no adapter.
SandboxTransports = Callable[[str], Transport]
# Retried after this when every connection slot of a relay is taken (max_connections).
CONNECTIONS_BUSY_SECONDS = 2.0


class ConnectionsBusy(TransientSendError):
    """Every connection slot of the relay is held by other senders: not an attempt; the chunk waits."""

    def __init__(self, route: str) -> None:
        super().__init__(f"every connection to {route!r} is in use (max_connections)", throttled=True)


class Sessions:
    """The transport sessions of one chunk: one per provider, opened on first use and reused for
    every message (one SMTP connection per chunk). A provider whose connection is lost is not
    tried again within the chunk."""

    def __init__(
        self, providers: Providers, sandbox: SandboxTransports | None, pacer: Pacer | None = None
    ) -> None:
        self._providers = providers
        self._sandbox = sandbox
        self._pacer = pacer
        self._holder = uuid.uuid4().hex  # this delivery, as a holder of connection slots
        self._open: dict[str, TransportSession] = {}
        self._down: dict[str, TransientSendError] = {}
        self.offered = False  # whether the last message was handed to some relay (not just to open())

    def send_first(
        self, routes: list[str], sender: str, recipient: str, data: bytes, tags: dict[str, str]
    ) -> None:
        """Send through the first route that takes the message: a transient failure moves on to the
        next (the failover); the last route's error is raised."""
        self.offered = False
        live = [r for r in routes if r not in self._down]
        if not live:
            raise next(iter(self._down.values()))
        for position, name in enumerate(live):
            try:
                session = self._open.get(name)
                if session is None:
                    session = self._open[name] = self._connect(name)
                self.offered = True
                session.send(sender, recipient, data, tags)
                return
            except TransientSendError as exc:
                if exc.connection_lost:
                    self._down[name] = exc
                    self._open.pop(name, None)
                if position == len(live) - 1:
                    if len(self._down) < len(routes):
                        # Some route is still up: only this message waits, not the rest of the chunk.
                        exc.connection_lost = False
                    raise

    def _connect(self, name: str) -> TransportSession:
        """A new session, within the route's connection limit (a slot held until `close`)."""
        if self._pacer is None or name.startswith(SANDBOX_ROUTE):
            return self._transport(name).open()
        if not self._pacer.connect(name, self._holder):
            raise ConnectionsBusy(name)
        try:
            return self._transport(name).open()
        except BaseException:
            self._pacer.disconnect(name, self._holder)
            raise

    def _transport(self, name: str) -> Transport:
        if name.startswith(SANDBOX_ROUTE):
            if self._sandbox is None:
                raise RuntimeError("this sender was given no sandbox transport")
            return self._sandbox(name.removeprefix(SANDBOX_ROUTE))
        return self._providers.get(name)

    def close(self) -> None:
        for name, session in self._open.items():
            session.close()
            if self._pacer is not None and not name.startswith(SANDBOX_ROUTE):
                self._pacer.disconnect(name, self._holder)

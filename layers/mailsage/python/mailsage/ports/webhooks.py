"""The webhook ports: name resolution and the HTTP POST of one signed delivery.

Both sit behind ports so the domain decides what may be reached and what an answer means without
opening a socket (adapters: adapters/dns.py, adapters/webhook_http.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from mailsage.ports.stores import WebhookDeliveryStore, WebhookStore


class Resolver(Protocol):
    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses `host` resolves to for a TCP connection to `port`, in the resolver's
        order. Raises OSError (socket.gaierror) when the name does not resolve or has no address."""


@dataclass(slots=True, frozen=True)
class WebhookResponse:
    """What one POST came to: the status code, or why there was none (`error`)."""

    status_code: int | None
    error: str | None
    duration_ms: int


class WebhookClient(Protocol):
    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> WebhookResponse:
        """POST `body` to `url` within `timeout` seconds for the whole exchange, connecting only to
        an address the deployment allows (a refused address is an `error`, never a connection).
        Never raises for what the network or the endpoint did: that is the response's `error`."""


class WebhookStores(WebhookStore, WebhookDeliveryStore, Protocol):
    """Webhooks with their delivery log: what the webhook service and the dispatcher use."""

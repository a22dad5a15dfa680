"""Named transports. A job sends through the provider its request named, else its account's
default, else the deployment's default; a failover provider takes over on transient errors."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from mailsage.errors import ValidationFailed
from mailsage.ports import Transport


class Providers:
    def __init__(
        self,
        factories: Mapping[str, Callable[[], Transport]],
        default: str,
        failover: str | None = None,
    ) -> None:
        for name in (default, failover):
            if name is not None and name not in factories:
                raise ValueError(
                    f"provider {name!r} is not configured; configured: {', '.join(sorted(factories))}"
                )
        self._factories = dict(factories)
        self.default = default
        self.failover = failover
        self._built: dict[str, Transport] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._factories)

    def get(self, name: str | None) -> Transport:
        """The transport for a provider name (None: the default). Built on first use: an SMTP relay
        whose credentials live in Secrets Manager is only looked up when a job uses it."""
        name = name or self.default
        with self._lock:
            if name not in self._built:
                self._built[name] = self._factories[name]()
            return self._built[name]

    def failover_for(self, name: str | None) -> str | None:
        name = name or self.default
        return self.failover if self.failover and self.failover != name else None


def check_provider(name: str | None, known: frozenset[str]) -> None:
    if name is not None and name not in known:
        raise ValidationFailed(
            f"unknown provider {name!r}; this deployment has: {', '.join(sorted(known))}",
            {"field": "provider"},
        )

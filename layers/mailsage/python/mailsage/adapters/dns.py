"""Name resolution for webhook deliveries: the system resolver (getaddrinfo)."""

from __future__ import annotations

import socket


class SystemResolver:
    """The `Resolver` port over the operating system's resolver."""

    def resolve(self, host: str, port: int) -> list[str]:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in infos))
        if not addresses:
            raise socket.gaierror(f"{host} has no address")
        return addresses

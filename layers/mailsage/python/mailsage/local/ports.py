"""The local server's ports, checked before anything starts: a busy one (another `mailsage serve`,
or Mailpit or MailHog on their usual 8025/1025) is one clear line, not a child's traceback and a
half-started server."""

from __future__ import annotations

import errno
import socket


class PortInUse(RuntimeError):
    """A port the server needs is taken by another program."""


def require_free(host: str, port: int, what: str, flag: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers bind: a socket of our own last run in TIME_WAIT is no conflict.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUse(
                    f"the {what} port {host}:{port} is in use by another program; choose another with {flag} N"
                ) from None
            raise

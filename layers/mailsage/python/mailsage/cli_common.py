"""What the API commands of the CLI share: the connection options, the API key (with the local
runtime's dev key as a fallback on loopback), the client, and one-line errors."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8026"  # `mailsage serve`'s default port
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
INSTALL_HINT = "the API commands need the Python client: pip install ./clients/python (from the repository)"


class CliError(Exception):
    """One line for the user and the exit status (2: the command line or its input is wrong)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def add_connection(parser: argparse.ArgumentParser, data_dir: str) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--url",
        default=os.environ.get("MAILSAGE_URL") or DEFAULT_URL,
        help=f"the API's base URL (default: $MAILSAGE_URL, else {DEFAULT_URL})",
    )
    group.add_argument(
        "--api-key",
        default=os.environ.get("MAILSAGE_API_KEY"),
        help="default: $MAILSAGE_API_KEY; for a URL on this machine (127.0.0.1, localhost) the dev key"
        " that `mailsage serve` keeps in --data-dir (dev-account.json), else $MAILSAGE_DEV_API_KEY",
    )
    group.add_argument(
        "--data-dir", default=data_dir, help="where to find the local dev key (default: %(default)s)"
    )


def api_key(args: argparse.Namespace) -> str:
    if args.api_key:
        return str(args.api_key)
    if (urlsplit(args.url).hostname or "") in LOOPBACK_HOSTS:
        from mailsage.local.dev_credentials import remembered_key

        key = remembered_key(Path(args.data_dir)) or os.environ.get("MAILSAGE_DEV_API_KEY")
        if key:
            return key
    raise CliError("no API key: pass --api-key or set MAILSAGE_API_KEY", status=2)


def client(args: argparse.Namespace) -> Any:
    try:
        from mailsage_client import MailSage
    except ImportError:
        raise CliError(INSTALL_HINT) from None
    return MailSage(base_url=args.url.rstrip("/"), api_key=api_key(args))


def variables(pairs: list[str]) -> dict[str, str]:
    """`--var k=v` values as a mapping (the last one of a name wins)."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CliError(f"--var {pair!r}: expected NAME=VALUE", status=2)
        found[name.strip()] = value
    return found


def one_line_errors(command: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[..., int]]:
    """Run a command; a `CliError` or an API error becomes one line on stderr and a non-zero exit."""

    def wrap(run: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
        @functools.wraps(run)
        def wrapped(args: argparse.Namespace) -> int:
            try:
                return run(args)
            except CliError as exc:
                return fail(command, str(exc), exc.status)
            except Exception as exc:
                if type(exc).__module__.startswith("mailsage_client"):
                    return fail(command, _api_error(exc))
                raise

        return wrapped

    return wrap


def fail(command: str, message: str, status: int = 1) -> int:
    print(f"mailsage {command}: {message}", file=sys.stderr)
    return status


def _api_error(exc: Exception) -> str:
    """The API's status, code and message (the client's error prints them); a hint for the codes
    whose cause is on this side."""
    code = getattr(exc, "code", "")
    hints = {
        "unauthorized": " (check --api-key / MAILSAGE_API_KEY)",
        "idempotency_mismatch": " (this file was sent with other options within the idempotency"
        " window; pass --idempotency-key to send it again)",
    }
    details = getattr(exc, "details", None)
    rejected = details.get("rejected") if isinstance(details, dict) else None
    if rejected and isinstance(rejected[0], dict):  # a batch with no valid recipient: say why
        first = rejected[0]
        more = f" (and {len(rejected) - 1} more)" if len(rejected) > 1 else ""
        return f"{exc}; first: {first.get('email')}: {first.get('code')}: {first.get('message')}{more}"
    return f"{exc}{hints.get(code, '')}"


def dump(model: Any) -> str:
    """A client model as the JSON the API sent."""
    return json.dumps(model.model_dump(mode="json", by_alias=True), indent=2)

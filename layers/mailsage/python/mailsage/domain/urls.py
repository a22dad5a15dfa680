"""Webhook URLs: what an account may register, and where a delivery may connect.

Two checks, because a name can change its address between them (DNS rebinding):
- `check_webhook_url` when a webhook is created or changed: the URL's form, and its host when the
  host is a literal address or a name that is private by definition (`localhost`, `*.internal`).
- `resolve_public` at every delivery: the addresses the name resolves to now (asked of a
  `Resolver`, ports/webhooks.py), all of which must be public; the caller connects to one of
  exactly these addresses and to nothing else.

Outside the embedded runtime (`allow_private` False) a webhook cannot reach loopback, private,
link-local (the instance metadata service at 169.254.169.254), shared, unique-local, multicast or
reserved addresses.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from mailsage.errors import ValidationFailed
from mailsage.ports.webhooks import Resolver

MAX_URL_LENGTH = 2048

# Names that never denote a public host (RFC 6761 / 6762 / 8375 and common internal suffixes).
_PRIVATE_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_PRIVATE_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".home.arpa", ".intranet", ".lan")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")  # controls, space, backslash (parsers disagree on it)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The largest last part of a BSD-style IPv4 literal with 1, 2, 3 or 4 parts (it fills the rest).
_MAX_LAST_PART = {1: 0xFFFFFFFF, 2: 0xFFFFFF, 3: 0xFFFF, 4: 0xFF}
_DIGITS = {8: set("01234567"), 10: set("0123456789"), 16: set("0123456789abcdefABCDEF")}


class BlockedAddress(ValidationFailed):
    """The host is, or resolves to, an address a webhook may not reach."""


def is_public_address(ip: IPAddress) -> bool:
    """A global unicast address, also looking inside the IPv6 forms that embed an IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d
            return is_public_address(ip.ipv4_mapped)
        if any(ip in net for net in _NAT64):  # reaches a.b.c.d through a NAT64 gateway
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        embedded = [ip.sixtofour] if ip.sixtofour is not None else []
        if ip.teredo is not None:
            embedded.extend(ip.teredo)
        if not all(is_public_address(v4) for v4 in embedded):
            return False
    return bool(
        ip.is_global
        and not ip.is_multicast
        and not ip.is_reserved
        and not ip.is_unspecified
        and not ip.is_loopback
        and not ip.is_link_local
        and not ip.is_private
    )


def literal_address(host: str) -> IPAddress | None:
    """The address if `host` is an IP literal, in any form a resolver would accept (`127.1`,
    `0x7f.0.0.1`, `2130706433`, `[::1]` without its brackets); None for a name."""
    candidate = host.strip("[]")
    try:
        return ipaddress.ip_address(candidate.split("%", 1)[0])
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fA-FxX.]+", candidate):
        return _bsd_ipv4(candidate)
    return None


def _bsd_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """An IPv4 literal as the C library's inet_aton reads it (what a resolver connects to): one to
    four dot-separated parts, each decimal, octal (leading 0) or hex (0x), the last filling the
    remaining bytes; None if it is not one."""
    parts: list[int] = []
    for part in text.split("."):
        if not part or part[0] not in "0123456789":
            return None
        if part[:2].lower() == "0x":
            digits, base = part[2:], 16
        else:
            digits, base = part, 8 if part[0] == "0" else 10
        if not digits or not set(digits) <= _DIGITS[base]:
            return None
        value = int(digits, base)
        if value > 0xFFFFFFFF:
            return None
        parts.append(value)
    if len(parts) > 4 or any(p > 0xFF for p in parts[:-1]) or parts[-1] > _MAX_LAST_PART[len(parts)]:
        return None
    address = parts[-1]
    for i, byte in enumerate(parts[:-1]):
        address |= byte << (24 - 8 * i)
    return ipaddress.IPv4Address(address)


def is_private_name(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name in _PRIVATE_NAMES or name.endswith(_PRIVATE_SUFFIXES)


def check_webhook_url(url: str, allow_private: bool) -> str:
    """The URL, stripped of surrounding whitespace, if a webhook may be registered with it; raises
    ValidationFailed (BlockedAddress for a private host) saying what is wrong otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationFailed("the webhook url is required")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValidationFailed(
            f"the webhook url is {len(url)} characters long; the limit is {MAX_URL_LENGTH}"
        )
    if _FORBIDDEN_CHARS.search(url):
        raise ValidationFailed("the webhook url may not contain spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise ValidationFailed(f"the webhook url is malformed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationFailed("the webhook url must start with http:// or https://")
    if "@" in parts.netloc:
        raise ValidationFailed("the webhook url may not contain a user name or password")
    host = parts.hostname
    if not host:
        raise ValidationFailed("the webhook url has no host")
    if port == 0:
        raise ValidationFailed("the webhook url's port must be between 1 and 65535")
    if not allow_private:
        _check_public_host(host)
    return url


def _check_public_host(host: str) -> None:
    """BlockedAddress unless `host` can only name a public address (checked again at each
    delivery, on the addresses it resolves to)."""
    address = literal_address(host)
    if address is not None:
        if not is_public_address(address):
            raise BlockedAddress(
                f"the webhook url's host {host} is not a public address (loopback, private,"
                " link-local, multicast and reserved addresses are not allowed)"
            )
    elif is_private_name(host):
        raise BlockedAddress(f"the webhook url's host {host} is a local or internal name, not a public one")
    elif "." not in host.rstrip("."):
        raise BlockedAddress(f"the webhook url's host {host} is not a fully qualified domain name")


def resolve_public(host: str, port: int, allow_private: bool, resolver: Resolver) -> list[str]:
    """The addresses to connect to for `host`, in the resolver's order, each once. Without
    `allow_private`, raises BlockedAddress if ANY of them is not public (a name that resolves to a
    public and a private address is refused as a whole). Resolution errors (OSError) propagate."""
    addresses = list(dict.fromkeys(resolver.resolve(host.strip("[]"), port)))
    if not addresses:
        raise OSError(f"{host} has no address")
    if not allow_private:
        for address in addresses:
            if not is_public_address(ipaddress.ip_address(address.split("%", 1)[0])):
                raise BlockedAddress(f"{host} resolves to {address}, which is not a public address")
    return addresses

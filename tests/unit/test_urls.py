"""Webhook URLs: the registration check and the resolution check at send time."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsage.adapters.dns import SystemResolver
from mailsage.domain.urls import (
    BlockedAddress,
    check_webhook_url,
    is_public_address,
    literal_address,
    resolve_public,
)
from mailsage.errors import ValidationFailed


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/mailsage",
        "http://hooks.example.com:8080/a/b?c=d",
        "https://8.8.8.8/hook",
        "https://[2606:4700:4700::1111]/hook",
        "https://Hooks.Example.COM./x",
    ],
)
def test_public_urls_are_accepted(url: str) -> None:
    assert check_webhook_url(url, allow_private=False) == url


def test_surrounding_whitespace_is_dropped() -> None:
    assert check_webhook_url("  https://hooks.example.com/x \n", False) == "https://hooks.example.com/x"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "required"),
        ("ftp://hooks.example.com/x", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("hooks.example.com/x", "http:// or https://"),
        ("https:///path", "no host"),
        ("https://user:pass@hooks.example.com/", "user name or password"),
        ("https://user@hooks.example.com/", "user name or password"),
        ("https://hooks.example.com:99999/", "malformed"),
        ("https://hooks.example.com:0/", "port"),
        ("https://hooks.example.com/a b", "spaces"),
        ("https://hooks.example.com/\r\nX-Injected: 1", "control characters"),
        ("https://hooks.example.com\\@evil.example/", "backslashes"),
        ("https://hooks.example.com/" + "a" * 2048, "limit is 2048"),
    ],
)
def test_malformed_urls_are_refused_with_a_clear_message(url: str, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        check_webhook_url(url, allow_private=True)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",  # shorthand a resolver accepts
        "2130706433",  # 127.0.0.1 as one number
        "0x7f.0.0.1",
        "0.0.0.0",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",  # the instance metadata service
        "100.64.0.1",  # carrier-grade NAT
        "224.0.0.1",  # multicast
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "[::1]",
        "[::]",
        "[fe80::1]",
        "[fc00::1]",
        "[fd12:3456::1]",
        "[ff02::1]",
        "[::ffff:127.0.0.1]",  # IPv4-mapped
        "[::ffff:169.254.169.254]",
        "[64:ff9b::a00:1]",  # NAT64 to 10.0.0.1
        "[2002:c0a8:101::1]",  # 6to4 of 192.168.1.1
    ],
)
def test_private_literal_addresses_are_refused(host: str) -> None:
    with pytest.raises(BlockedAddress, match="not a public address"):
        check_webhook_url(f"http://{host}:8080/hook", allow_private=False)
    assert check_webhook_url(f"http://{host}:8080/hook", allow_private=True)  # the embedded runtime


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST.",
        "api.localhost",
        "metadata.google.internal",
        "db.internal",
        "printer.local",
        "intranet",
    ],
)
def test_local_and_internal_names_are_refused(host: str) -> None:
    with pytest.raises(
        BlockedAddress, match=f"host {host.lower()} is (a local or internal name|not a fully qualified)"
    ):
        check_webhook_url(f"https://{host}/hook", allow_private=False)
    assert check_webhook_url(f"https://{host}/hook", allow_private=True)


def test_a_blocked_address_is_a_validation_error() -> None:
    assert issubclass(BlockedAddress, ValidationFailed)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),
        ("192.0.2.1", False),  # documentation
        ("198.18.0.1", False),  # benchmarking
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_literal_address_tells_names_from_numbers() -> None:
    assert literal_address("cafe.face") is None
    assert literal_address("1.2.3.4.example.com") is None
    assert str(literal_address("127.1")) == "127.0.0.1"


# -- at send time --------------------------------------------------------------------------------


class FakeResolver:
    """A resolver with fixed answers; an unknown name fails as the system resolver does."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.answers[host])


def test_resolve_public_returns_every_public_address_once() -> None:
    resolver = FakeResolver({"hooks.example.com": ["93.184.216.34", "2606:2800:220:1::1", "93.184.216.34"]})
    assert resolve_public("hooks.example.com", 443, False, resolver) == [
        "93.184.216.34",
        "2606:2800:220:1::1",
    ]


@pytest.mark.parametrize(
    "answers",
    [
        ["127.0.0.1"],
        ["169.254.169.254"],
        ["93.184.216.34", "10.0.0.7"],  # one private answer refuses the name
        ["fd00::1"],
        ["::ffff:10.0.0.1"],
    ],
)
def test_a_name_that_resolves_to_a_private_address_is_refused(answers: list[str]) -> None:
    """A name that passed the registration check can later point anywhere (DNS rebinding)."""
    resolver = FakeResolver({"rebind.example.com": answers})
    with pytest.raises(BlockedAddress, match="rebind.example.com resolves to .* not a public address"):
        resolve_public("rebind.example.com", 443, False, resolver)
    assert resolve_public("rebind.example.com", 443, True, resolver) == list(dict.fromkeys(answers))


def test_localhost_is_resolved_and_refused() -> None:
    """The real resolver: localhost is a loopback address."""
    resolver = SystemResolver()
    with pytest.raises(BlockedAddress, match="localhost resolves to"):
        resolve_public("localhost", 80, False, resolver)
    assert "127.0.0.1" in resolve_public("localhost", 80, True, resolver) or "::1" in resolve_public(
        "localhost", 80, True, resolver
    )


def test_an_unknown_name_raises_a_resolution_error() -> None:
    with pytest.raises(socket.gaierror):
        resolve_public("nowhere.example.com", 443, False, FakeResolver({}))


# -- IPv4 literals in every form a C resolver reads ---------------------------------------------


@given(st.text(alphabet="0123456789abcdefABCDEFxX.", min_size=1, max_size=20))
@settings(max_examples=3000, deadline=None)
def test_literal_address_reads_ipv4_forms_as_inet_aton_does(text: str) -> None:
    # Given any string of the characters an IPv4 literal may use
    try:
        expected = ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        expected = None
    # Then the domain's own parser agrees with the C library's inet_aton
    assert literal_address(text) == expected

"""Contract of the Transport port (ports.transport): one set of behaviours, run against every adapter.

- smtp: SmtpTransport against a real aiosmtpd server on 127.0.0.1 that refuses chosen recipients
  with real replies (550 5.1.1 at RCPT: permanent; 451 4.2.1: transient).
- ses: SesTransport under moto. moto refuses an unverified sender (MessageRejected: permanent); it
  never throttles, so the transient case is the real client pointed at a closed loopback port
  (SES unreachable). moto ignores EmailTags: tags are read from the request the client made.
- sandbox: SandboxTransport; its outcome is chosen per transport ("fail", "defer"), not per address,
  and nothing leaves the process, so there is nothing to observe on the far side.

Adding a transport is one harness: a class with the attributes of `Harness` and one entry in
HARNESSES. A harness says what it can observe (None: it cannot) and the suite asserts the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest

from mailsage.errors import PermanentSendError, TransientSendError
from mailsage.ports import Transport
from tests.conftest import free_port

SENDER = "noreply@acme.test"
RECIPIENT = "user@example.com"
TAGS = {"account_id": "acc_a", "job_id": "job_1", "message_id": "msg_1"}


def raw_message(n: int = 0) -> bytes:
    """A rendered message as the sender hands it over: CRLF lines, 7-bit, and a line that starts
    with a dot (SMTP must stuff it on the wire and unstuff it on arrival)."""
    return (
        f"From: Acme <{SENDER}>\r\nTo: {RECIPIENT}\r\nSubject: Hello {n}\r\n"
        f"Message-ID: <msg_{n}@mailsage.local>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Dear User {n}\r\n.a line that starts with a dot\r\n..and two\r\n"
    ).encode()


@dataclass(frozen=True)
class Case:
    """One send a harness sets up: through this transport, from this sender, to this recipient."""

    transport: Transport
    sender: str
    recipient: str


@dataclass
class Arrived:
    """A message as the far side saw it."""

    sender: str
    recipients: list[str]
    data: bytes
    provider_id: str | None = None  # the id the far side gave it, where it is observable
    tags: dict[str, str] | None = None  # None: the transport carries no tags


class Harness(Protocol):
    def accepting(self) -> Case:
        """A send that the far side accepts."""

    def refused_permanently(self) -> Case:
        """A send refused for good by the far side (a recipient or sender it will never take)."""

    def refused_transiently(self) -> Case:
        """A send that fails for now: worth retrying later."""

    def arrived(self) -> list[Arrived] | None:
        """What reached the far side, in order; None if the adapter's far side is not observable."""

    def connections(self) -> int | None:
        """Connections the far side saw; None if the transport holds none."""


# -- smtp: a real server on loopback -----------------------------------------------------------------

BOUNCING = "nobody@example.com"
BUSY = "busy@example.com"


class _SmtpServer:
    """aiosmtpd handler: refuses BOUNCING (550 5.1.1) and BUSY (451 4.2.1) at RCPT, keeps the rest."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrived: list[Arrived] = []
        self.connections = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address == BOUNCING:
            return "550 5.1.1 no such mailbox here"
        if address == BUSY:
            return "451 4.2.1 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.arrived.append(
                Arrived(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return "250 2.0.0 queued"


@dataclass
class SmtpHarness:
    server: _SmtpServer
    transport: Transport

    def accepting(self) -> Case:
        return Case(self.transport, SENDER, RECIPIENT)

    def refused_permanently(self) -> Case:
        return Case(self.transport, SENDER, BOUNCING)

    def refused_transiently(self) -> Case:
        return Case(self.transport, SENDER, BUSY)

    def arrived(self) -> list[Arrived] | None:
        with self.server.lock:
            return list(self.server.arrived)

    def connections(self) -> int | None:
        with self.server.lock:
            return self.server.connections


@contextmanager
def _smtp() -> Iterator[Harness]:
    from aiosmtpd.controller import Controller

    from mailsage.adapters.smtp import SmtpConfig, SmtpTransport

    server = _SmtpServer()
    port = free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpHarness(server, SmtpTransport(SmtpConfig("127.0.0.1", port, timeout=5.0)))
    finally:
        controller.stop()


# -- ses: SES v2 under moto --------------------------------------------------------------------------


@dataclass
class SesHarness:
    client: Any
    transport: Transport
    requests: list[dict[str, Any]] = field(default_factory=list)

    def accepting(self) -> Case:
        return Case(self.transport, SENDER, RECIPIENT)

    def refused_permanently(self) -> Case:
        # moto, like SES, rejects a sender whose identity was never verified (MessageRejected).
        return Case(self.transport, "someone@unverified.test", RECIPIENT)

    def refused_transiently(self) -> Case:
        import boto3
        from botocore.config import Config

        from mailsage.adapters.aws.ses_transport import SesTransport

        # SES out of reach: a real client against a loopback port nothing listens on, one attempt.
        unreachable = boto3.client(
            "sesv2",
            endpoint_url=f"http://127.0.0.1:{free_port()}",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=2),
        )
        return Case(SesTransport(client=unreachable), SENDER, RECIPIENT)

    def arrived(self) -> list[Arrived] | None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ses.models import ses_backends

        from tests.moto_env import REGION

        sent = list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)
        # moto keeps only accepted sends; the recorded requests include refused ones.
        accepted = [r for r in self.requests if r["FromEmailAddress"] == SENDER]
        return [
            Arrived(
                s.source,
                list(r["Destination"]["ToAddresses"]),  # moto adds the To header to its own list
                s.raw_data.encode(),
                provider_id=s.id,
                tags={t["Name"]: t["Value"] for t in r.get("EmailTags", [])},
            )
            for s, r in zip(sent, accepted, strict=True)
        ]

    def connections(self) -> int | None:
        return None  # an HTTPS API: no connection held per session


@contextmanager
def _ses() -> Iterator[Harness]:
    import boto3

    from mailsage.adapters.aws.ses_transport import SesTransport
    from tests.moto_env import REGION, mocked_aws

    with mocked_aws():
        client = boto3.client("sesv2", region_name=REGION)
        client.create_email_identity(EmailIdentity="acme.test")
        harness = SesHarness(client, SesTransport(client=client))

        def record(params: dict[str, Any], **_: Any) -> None:
            harness.requests.append(params)

        client.meta.events.register("provide-client-params.sesv2.SendEmail", record)
        yield harness


# -- sandbox: never leaves the process ----------------------------------------------------------------


class SandboxHarness:
    def __init__(self) -> None:
        from mailsage.adapters.sandbox import SandboxTransport

        self.transport = SandboxTransport("deliver")
        self.failing = SandboxTransport("fail")
        self.deferring = SandboxTransport("defer")

    def accepting(self) -> Case:
        return Case(self.transport, SENDER, RECIPIENT)

    def refused_permanently(self) -> Case:
        return Case(self.failing, SENDER, RECIPIENT)

    def refused_transiently(self) -> Case:
        return Case(self.deferring, SENDER, RECIPIENT)

    def arrived(self) -> list[Arrived] | None:
        return None

    def connections(self) -> int | None:
        return None


@contextmanager
def _sandbox() -> Iterator[Harness]:
    yield SandboxHarness()


HARNESSES: dict[str, Callable[[], AbstractContextManager[Harness]]] = {
    "smtp": _smtp,
    "ses": _ses,
    "sandbox": _sandbox,
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with HARNESSES[request.param]() as built:
        yield built


def send(case: Case, data: bytes, tags: dict[str, str] | None = None) -> str | None:
    session = case.transport.open()
    try:
        return session.send(case.sender, case.recipient, data, tags)
    finally:
        session.close()


# -- accepted -----------------------------------------------------------------------------------------


def test_an_accepted_message_returns_a_provider_id_or_none(harness: Harness) -> None:
    # Given a send the far side accepts
    case = harness.accepting()
    # When it is sent
    provider_id = send(case, raw_message())
    # Then send returns the provider's id if it has one (a non-empty string), else None
    assert provider_id is None or (isinstance(provider_id, str) and provider_id)
    # And where the far side shows its id, it is the one returned
    arrived = harness.arrived()
    if arrived is not None and arrived[0].provider_id is not None:
        assert provider_id == arrived[0].provider_id


def test_the_bytes_arrive_unchanged_from_the_sender_to_the_recipient(harness: Harness) -> None:
    # Given a send the far side accepts
    case = harness.accepting()
    # When a message is sent
    send(case, raw_message())
    # Then, where the far side is observable, exactly those bytes arrived, with the envelope
    arrived = harness.arrived()
    if arrived is None:
        pytest.skip("this transport's far side is not observable")
    [message] = arrived
    assert message.data == raw_message()
    assert message.sender == case.sender
    assert message.recipients == [case.recipient]


def test_tags_travel_where_the_provider_carries_them(harness: Harness) -> None:
    # Given a send the far side accepts
    case = harness.accepting()
    # When a message is sent with MailSage's tags
    send(case, raw_message(), TAGS)
    # Then a provider with tags received them; one without received the message untouched
    arrived = harness.arrived()
    if arrived is None:
        pytest.skip("this transport's far side is not observable")
    [message] = arrived
    if message.tags is not None:
        assert message.tags == TAGS
    assert message.data == raw_message()


def test_one_session_sends_several_messages(harness: Harness) -> None:
    # Given one open session
    case = harness.accepting()
    session = case.transport.open()
    # When it sends three messages
    ids = [session.send(case.sender, case.recipient, raw_message(n), TAGS) for n in range(3)]
    session.close()
    # Then each was accepted, with its own provider id where there is one
    given = [i for i in ids if i is not None]
    assert len(set(given)) == len(given)
    # And all three arrived in order, over one connection where the transport holds one
    arrived = harness.arrived()
    if arrived is not None:
        assert [m.data for m in arrived] == [raw_message(n) for n in range(3)]
    connections = harness.connections()
    if connections is not None:
        assert connections == 1


# -- refused ------------------------------------------------------------------------------------------


def test_a_permanent_refusal_raises_permanent_send_error(harness: Harness) -> None:
    # Given a send the far side will never take
    case = harness.refused_permanently()
    # When it is sent / Then the error says retrying will not help, and nothing arrived
    with pytest.raises(PermanentSendError):
        send(case, raw_message())
    assert not harness.arrived()


def test_a_transient_failure_raises_transient_send_error(harness: Harness) -> None:
    # Given a send that cannot succeed now
    case = harness.refused_transiently()
    # When it is sent / Then the error says to retry later, and nothing arrived
    with pytest.raises(TransientSendError):
        send(case, raw_message())
    assert not harness.arrived()


@pytest.mark.parametrize("refusal", ["refused_permanently", "refused_transiently"])
def test_a_refused_message_leaves_the_session_usable_unless_the_connection_was_lost(
    harness: Harness, refusal: str
) -> None:
    # Given a session on which one message is refused
    refused: Case = getattr(harness, refusal)()
    accepted = harness.accepting()
    if refused.transport is not accepted.transport:
        pytest.skip("this transport refuses per transport, not per message")
    session = accepted.transport.open()
    with pytest.raises((PermanentSendError, TransientSendError)) as caught:
        session.send(refused.sender, refused.recipient, raw_message(0))
    if getattr(caught.value, "connection_lost", False):
        pytest.skip("the connection was lost: the caller opens a new session")
    # When the next message goes through the same session
    session.send(accepted.sender, accepted.recipient, raw_message(1))
    session.close()
    # Then it arrives
    arrived = harness.arrived()
    if arrived is not None:
        assert [m.data for m in arrived] == [raw_message(1)]


# -- closing ------------------------------------------------------------------------------------------


def test_closing_a_session_twice_is_harmless(harness: Harness) -> None:
    # Given a session that sent a message
    case = harness.accepting()
    session = case.transport.open()
    session.send(case.sender, case.recipient, raw_message())
    # When it is closed twice / Then neither close raises
    session.close()
    session.close()


def test_closing_an_unused_session_is_harmless(harness: Harness) -> None:
    # Given a session that never sent / When it is closed / Then nothing raises or arrives
    harness.accepting().transport.open().close()
    assert not harness.arrived()

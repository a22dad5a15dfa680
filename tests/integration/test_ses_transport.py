"""The SES v2 transport: raw sends under moto, and how SES errors are classified for the sender.

Where moto differs from SES (each noted where it matters):
- moto records a raw send in the SES v1 backend (`ses_backends[account][region].sent_messages`) but
  ignores EmailTags and ConfigurationSetName entirely (it does not even check that the set exists;
  SES answers NotFoundException): the tests read those from the request the client made.
- moto verifies an identity the moment it is created and does not check recipients; SES needs the
  DNS or email confirmation, and in the sandbox verified recipients too.
- moto never throttles, pauses sending or drops connections: those are stubbed on a real client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.stub import Stubber

from mailsage.adapters.aws.ses_transport import SesTransport, message_tags, sanitize_tag
from mailsage.errors import PermanentSendError, ProviderPaused, TransientSendError
from tests.contract.aws_messaging import REGION, mocked_aws

SENDER = "noreply@acme.test"
RECIPIENT = "user@example.com"
CONFIGURATION_SET = "mailsage-events"
TAGS = {"account_id": "acc_a", "job_id": "job_1", "message_id": "msg_1"}


def raw_message(subject: str = "Hello") -> bytes:
    return (
        f"From: Acme <{SENDER}>\r\nTo: {RECIPIENT}\r\nSubject: {subject}\r\n"
        "Message-ID: <msg_1@mailsage.local>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nDear User\r\n"
    ).encode()


@pytest.fixture
def ses() -> Iterator[Any]:
    """A moto SES with the sending domain verified and the configuration set created."""
    with mocked_aws():
        client = boto3.client("sesv2", region_name=REGION)
        client.create_email_identity(EmailIdentity="acme.test")
        client.create_configuration_set(ConfigurationSetName=CONFIGURATION_SET)
        yield client


def sent_messages() -> list[Any]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)


def record_requests(client: Any) -> list[dict[str, Any]]:
    """The SendEmail parameters the client is called with (moto drops tags and configuration set)."""
    requests: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        requests.append(params)

    client.meta.events.register("provide-client-params.sesv2.SendEmail", record)
    return requests


# -- sending under moto -------------------------------------------------------------------------------


def test_verified_sender_sends_the_raw_message_with_tags_and_configuration_set(ses: Any) -> None:
    # Given a transport with a configuration set, on a client whose requests are recorded
    requests = record_requests(ses)
    session = SesTransport(CONFIGURATION_SET, client=ses).open()
    # When a message is sent with MailSage's tags
    message_id = session.send(SENDER, RECIPIENT, raw_message(), TAGS)
    session.close()
    # Then SES took the raw MIME as is, from the sender to the recipient, and returned its id
    [sent] = sent_messages()
    assert message_id == sent.id
    assert sent.source == SENDER
    assert RECIPIENT in sent.destinations
    assert sent.raw_data == raw_message().decode()
    # And the request carried the configuration set and the tags (which moto itself ignores)
    [request] = requests
    assert request["ConfigurationSetName"] == CONFIGURATION_SET
    assert request["Destination"] == {"ToAddresses": [RECIPIENT]}
    assert request["FromEmailAddress"] == SENDER
    assert request["EmailTags"] == [{"Name": k, "Value": v} for k, v in TAGS.items()]


def test_without_configuration_set_or_tags_neither_is_sent(ses: Any) -> None:
    # Given a transport without a configuration set
    requests = record_requests(ses)
    session = SesTransport(client=ses).open()
    # When a message is sent without tags
    assert session.send(SENDER, RECIPIENT, raw_message())
    # Then the request names neither
    [request] = requests
    assert "ConfigurationSetName" not in request
    assert "EmailTags" not in request


def test_client_is_created_on_first_send_and_shared_by_sessions(ses: Any) -> None:
    # Given a transport that builds its own client (moto's region and credentials are set)
    transport = SesTransport()
    first, second = transport.open(), transport.open()
    # When each session sends
    first.send(SENDER, RECIPIENT, raw_message("one"))
    client = transport.client()
    second.send(SENDER, RECIPIENT, raw_message("two"))
    # Then both went out through the one client
    assert transport.client() is client
    assert len(sent_messages()) == 2


def test_unverified_sender_is_a_permanent_error_naming_the_code(ses: Any) -> None:
    # Given a sender whose domain was never verified
    session = SesTransport(client=ses).open()
    # When it sends / Then SES rejects it for good, and nothing went out
    with pytest.raises(PermanentSendError) as caught:
        session.send("someone@unverified.test", RECIPIENT, raw_message())
    assert "MessageRejected" in caught.value.message
    assert sent_messages() == []


# -- tags ---------------------------------------------------------------------------------------------


def test_tag_values_are_sanitized_to_what_ses_accepts() -> None:
    # SES v2 MessageTag: ASCII letters, digits, "_" and "-" only, at most 256 characters.
    assert sanitize_tag("msg_0123-abc") == "msg_0123-abc"
    assert sanitize_tag("a b.c@d/é") == "a_b_c_d__"
    assert sanitize_tag("x" * 300) == "x" * 256
    assert message_tags({"job id": "job 1", "empty": "", "ok": "v"}) == [
        {"Name": "job_id", "Value": "job_1"},
        {"Name": "ok", "Value": "v"},
    ]
    assert message_tags(None) == []


# -- error classification (stubbed: moto never answers with these) -----------------------------------


def stubbed_session(code: str, status: int, text: str | None = None) -> tuple[Any, Stubber]:
    client = boto3.client(
        "sesv2", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    stubber = Stubber(client)
    stubber.add_client_error("send_email", code, text or f"{code} happened", status)
    stubber.activate()
    return SesTransport(client=client).open(), stubber


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("TooManyRequestsException", 429),
        ("LimitExceededException", 400),
        ("Throttling", 400),
        ("ThrottlingException", 400),
        ("SendingPausedException", 400),
        ("AccessDeniedException", 403),
        ("NotFoundException", 404),  # the configuration set is missing: fix the deployment, then retry
    ],
)
def test_throttling_paused_sending_and_credentials_are_transient_for_the_whole_chunk(
    code: str, status: int
) -> None:
    # Given SES answering with an account-wide condition
    session, stubber = stubbed_session(code, status)
    # When a message is sent / Then it is retried later, and the rest of the chunk waits too
    with pytest.raises(TransientSendError) as caught:
        session.send(SENDER, RECIPIENT, raw_message(), TAGS)
    assert caught.value.connection_lost is True
    assert code in caught.value.message
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status"),
    [("InternalFailure", 500), ("ServiceUnavailable", 503), ("SomethingNew", 502)],
)
def test_server_errors_are_transient_for_this_message(code: str, status: int) -> None:
    # Given SES failing on its side
    session, _ = stubbed_session(code, status)
    # When a message is sent / Then it is retried later; the next message may still go out
    with pytest.raises(TransientSendError) as caught:
        session.send(SENDER, RECIPIENT, raw_message())
    assert caught.value.connection_lost is False
    assert code in caught.value.message


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("MessageRejected", 400),
        ("MailFromDomainNotVerifiedException", 400),
        ("AccountSuspendedException", 400),
        ("BadRequestException", 400),
        ("SomeOtherClientError", 400),
    ],
)
def test_rejections_are_permanent(code: str, status: int) -> None:
    # Given SES refusing the message
    session, _ = stubbed_session(code, status)
    # When it is sent / Then retrying would not help
    with pytest.raises(PermanentSendError) as caught:
        session.send(SENDER, RECIPIENT, raw_message())
    assert code in caught.value.message
    assert caught.value.details["aws_error_code"] == code


class RaisingClient:
    """Stands in for the SES client when the network fails before SES answers."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def send_email(self, **_: Any) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="https://email.eu-west-1.amazonaws.com"),
        ConnectTimeoutError(endpoint_url="https://email.eu-west-1.amazonaws.com"),
        ConnectionClosedError(endpoint_url="https://email.eu-west-1.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://email.eu-west-1.amazonaws.com"),
        NoCredentialsError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_connection_errors_are_transient_and_lose_the_connection(error: Exception) -> None:
    # Given SES out of reach
    session = SesTransport(client=RaisingClient(error)).open()
    # When a message is sent / Then it, and the rest of the chunk, are retried later
    with pytest.raises(TransientSendError) as caught:
        session.send(SENDER, RECIPIENT, raw_message())
    assert caught.value.connection_lost is True


@pytest.mark.parametrize(
    ("code", "status", "text"),
    [
        ("TooManyRequestsException", 429, None),
        ("Throttling", 400, "Maximum sending rate exceeded."),
        ("ThrottlingException", 400, None),
        ("MessageRejected", 400, "Maximum sending rate exceeded."),  # SES's wording is what counts
    ],
)
def test_a_rate_exceeded_is_a_throttle_not_an_attempt(code: str, status: int, text: str | None) -> None:
    # Given SES asking for a slower rate
    session, _ = stubbed_session(code, status, text)
    # When a message is sent / Then it is a throttle: retried later without counting an attempt,
    # the rest of the chunk waiting too
    with pytest.raises(TransientSendError) as caught:
        session.send(SENDER, RECIPIENT, raw_message())
    assert caught.value.throttled is True and caught.value.connection_lost is True


@pytest.mark.parametrize(
    ("code", "status"),
    [("LimitExceededException", 400), ("InternalFailure", 500)],
)
def test_other_transient_conditions_are_not_throttles(code: str, status: int) -> None:
    # Given SES answering with a condition that is not a sending rate
    session, _ = stubbed_session(code, status)
    # When a message is sent / Then it is transient, and not a throttle
    with pytest.raises(TransientSendError) as caught:
        session.send(SENDER, RECIPIENT, raw_message())
    assert caught.value.throttled is False


@pytest.mark.parametrize(
    ("code", "status", "text", "reason"),
    [
        ("Throttling", 400, "Daily message quota exceeded.", "daily_quota"),  # SES v1's answer
        ("LimitExceededException", 400, "Daily message quota exceeded.", "daily_quota"),
        ("TooManyRequestsException", 429, "Daily message quota exceeded", "daily_quota"),
        ("SendingPausedException", 400, "Sending is paused for this account.", "sending_paused"),
        ("SendingPausedException", 400, None, "sending_paused"),
    ],
)
def test_a_used_up_daily_quota_or_paused_sending_stops_the_provider(
    code: str, status: int, text: str | None, reason: str
) -> None:
    # Given SES refusing because the day's quota is used up, or sending is paused
    session, _ = stubbed_session(code, status, text)
    # When a message is sent / Then the provider is paused with the reason (checked before the
    # throttle that the code alone would mean), which is not an attempt and holds the whole chunk
    with pytest.raises(ProviderPaused) as caught:
        session.send(SENDER, RECIPIENT, raw_message())
    assert caught.value.reason == reason
    assert caught.value.throttled is True and caught.value.connection_lost is True
    assert code in caught.value.message


def test_a_rate_exceeded_is_not_a_paused_provider() -> None:
    session, _ = stubbed_session("Throttling", 400, "Maximum sending rate exceeded.")
    with pytest.raises(TransientSendError) as caught:
        session.send(SENDER, RECIPIENT, raw_message())
    assert caught.value.throttled is True and not isinstance(caught.value, ProviderPaused)

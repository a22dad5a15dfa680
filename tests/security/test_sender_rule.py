"""One sender rule on every way in: an account with `sender_domains` sends only from those domains,
through v1 /send and /batch, v2 create-message and the ingest queue, whatever gives the From (the
request, or the deployment's default when a request or its template gives none).

Matching is by domain, exact, as DNS compares names: case-insensitive, IDN in either form
(`bücher.example` is `xn--bcher-kva.example`), a trailing dot in the list ignored; a subdomain is
another domain and must be listed on its own."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailsage.domain.ingest import ingest_job_id
from mailsage.domain.models import Account as AccountSettings
from mailsage.local.functions import LocalContext, load_handler
from mailsage.local.sink import SmtpSink
from mailsage.ports import Queue, Store
from mailsage.settings import IngestSettings
from mailsage.wiring import Backends, ingest_service
from tests.conftest import Account, ApiClient, Reply, Worker, load_event, read_eml

DOMAINS = ["Acme.example", "bücher.example", "mail.example.org."]

ALLOWED = [
    "news@acme.example",
    "News <news@ACME.EXAMPLE>",  # the domain's case does not matter
    "shop@bücher.example",
    "shop@xn--bcher-kva.example",  # the same IDN domain as an A-label
    "shop@BÜCHER.example",
    "Bücher Shop <shop@bücher.example>",
    "x@mail.example.org",  # listed with a trailing dot
]
REFUSED = [
    "x@sub.acme.example",  # a subdomain is another domain
    "x@example.org",  # the parent of a listed subdomain
    "x@acme.example.evil.com",  # a listed domain as a prefix
    "x@evilacme.example",  # ... or as a suffix
    "x@bucher.example",  # the IDN without its diacritic is another domain
    "x@other.example",
]


def send_body(from_addr: str | None, **fields: Any) -> dict[str, Any]:
    body = json.loads(load_event("api_send.json")["body"])  # gives no from: the default applies
    if from_addr is not None:
        body["from"] = from_addr
    return {**body, **fields}


def batch_body(from_addr: str | None) -> dict[str, Any]:
    body = json.loads(load_event("api_batch.json")["body"])
    if from_addr is not None:
        body["from"] = from_addr
    return body


def v2_body(email: str) -> dict[str, Any]:
    body = json.loads(load_event("api_v2_create_message.json")["body"])
    body["from"] = {"email": email, "name": "Example Corp"}
    return body


def forbidden_v1(reply: Reply, domain: str) -> None:
    assert reply.status == 403, reply.body
    assert reply.error["code"] == "forbidden"
    assert reply.error["message"] == f"from: {domain} is not a sender domain of this account"


@pytest.fixture
def restricted(stores: Backends, account: Account) -> Account:
    stores.store.put_account(AccountSettings(account.id, sender_domains=DOMAINS))
    return account


# -- v1 send and batch -------------------------------------------------------------------------------


@pytest.mark.parametrize("from_addr", ALLOWED)
def test_v1_send_from_a_listed_domain_is_accepted(
    api: ApiClient, restricted: Account, from_addr: str
) -> None:
    # Given an account restricted to its sender domains
    # When it sends from one of them, in any spelling of that domain
    reply = api.post("/api/v1/emails/send", send_body(from_addr))
    # Then the send is accepted
    assert reply.status == 202, reply.body


@pytest.mark.parametrize("from_addr", REFUSED)
def test_v1_send_from_another_domain_is_forbidden(
    api: ApiClient, restricted: Account, stores: Backends, from_addr: str
) -> None:
    # Given an account restricted to its sender domains
    # When it sends from a domain that is not one of them
    reply = api.post("/api/v1/emails/send", send_body(from_addr))
    # Then it is refused as forbidden, naming the domain, and nothing is queued
    forbidden_v1(reply, from_addr.rpartition("@")[2])
    assert stores.queue.depth() == 0


def test_v1_send_with_the_default_from_outside_the_domains_is_forbidden(
    api: ApiClient, restricted: Account, stores: Backends
) -> None:
    # Given an account restricted to its domains and a request that gives no From
    # When it is sent (the deployment's default From, noreply@mailsage.example, would apply)
    reply = api.post("/api/v1/emails/send", send_body(None))
    # Then the default From is held to the same rule
    forbidden_v1(reply, "mailsage.example")
    assert stores.queue.depth() == 0


def test_v1_send_by_template_with_the_default_from_is_forbidden(api: ApiClient, restricted: Account) -> None:
    # Given a template (templates carry no From) of a restricted account
    created = api.post(
        "/api/v1/templates", {"name": "welcome", "subject": "Hi {{ name }}", "text": "Hello {{ name }}"}
    )
    assert created.status == 201, created.body
    template_id = created.body["template_id"]
    body = {
        "recipient": {"email": "user@example.com", "variables": {"name": "Ann"}},
        "template_id": template_id,
    }
    # When it is sent by template without a From, then with a listed one
    refused = api.post("/api/v1/emails/send", body)
    allowed = api.post("/api/v1/emails/send", {**body, "from": "news@acme.example"})
    # Then the default From is refused and the listed one accepted
    forbidden_v1(refused, "mailsage.example")
    assert allowed.status == 202, allowed.body


def test_an_idn_sender_is_sent_with_its_domain_in_a_labels(
    api: ApiClient, restricted: Account, worker: Worker, smtp_sink: SmtpSink
) -> None:
    # Given a restricted account with an IDN domain
    # When it sends from that domain written in Unicode
    reply = api.post("/api/v1/emails/send", send_body("News <shop@bücher.example>"))
    worker.drain()
    # Then the message is sent with the From domain in its ASCII (A-label) form
    assert reply.status == 202, reply.body
    [eml] = smtp_sink.messages()
    assert read_eml(eml)["From"] == "News <shop@xn--bcher-kva.example>"


@pytest.mark.parametrize("path", ["/api/v1/emails/send", "v2"])
def test_a_non_ascii_local_part_in_the_sender_is_a_400(
    api: ApiClient, restricted: Account, path: str
) -> None:
    # Given a sender whose local part is not ASCII (it has no form a relay without SMTPUTF8 takes)
    # When it is used on either surface
    if path == "v2":
        reply = api.post(f"/v2/accounts/{restricted.id}/messages", v2_body("jösé@acme.example"))
        message = reply.body["message"]
    else:
        reply = api.post(path, send_body("Jose <jösé@acme.example>"))
        message = reply.error["message"]
    # Then it is refused as invalid input, not a server error
    assert reply.status == 400, reply.body
    assert "local part must be ASCII" in message


def test_v1_batch_from_another_domain_is_forbidden_as_a_whole(
    api: ApiClient, restricted: Account, stores: Backends
) -> None:
    # Given a restricted account
    # When it submits a batch from an unlisted domain, and one with no From at all
    other = api.post("/api/v1/emails/batch", batch_body("x@other.example"))
    default = api.post("/api/v1/emails/batch", batch_body(None))
    # Then both are refused before any recipient is accepted
    forbidden_v1(other, "other.example")
    forbidden_v1(default, "mailsage.example")
    assert stores.queue.depth() == 0


def test_v1_batch_from_a_listed_domain_is_accepted(api: ApiClient, restricted: Account) -> None:
    reply = api.post("/api/v1/emails/batch", batch_body("News <news@acme.example>"))
    assert reply.status == 202, reply.body
    assert reply.body["accepted"] == 2


def test_an_account_without_sender_domains_sends_from_any_domain(api: ApiClient) -> None:
    # Given an account with no sender_domains (the local dev account)
    # When it sends from any domain, or with the default From
    # Then it is accepted: the rule only binds accounts that have domains
    assert api.post("/api/v1/emails/send", send_body("x@other.example")).status == 202
    assert api.post("/api/v1/emails/send", send_body(None)).status == 202


def test_an_empty_domain_list_allows_no_sender(api: ApiClient, stores: Backends, account: Account) -> None:
    stores.store.put_account(AccountSettings(account.id, sender_domains=[]))
    forbidden_v1(api.post("/api/v1/emails/send", send_body("news@acme.example")), "acme.example")


# -- v2 create-message --------------------------------------------------------------------------------


@pytest.mark.parametrize("from_addr", ALLOWED)
def test_v2_from_a_listed_domain_is_accepted(api: ApiClient, restricted: Account, from_addr: str) -> None:
    email = from_addr.partition("<")[2].rstrip(">") or from_addr
    reply = api.post(f"/v2/accounts/{restricted.id}/messages", v2_body(email))
    assert reply.status == 202, reply.body


@pytest.mark.parametrize("from_addr", REFUSED)
def test_v2_from_another_domain_is_forbidden_in_the_v2_envelope(
    api: ApiClient, restricted: Account, from_addr: str
) -> None:
    # Given a restricted account
    # When a v2 message is created from an unlisted domain
    reply = api.post(f"/v2/accounts/{restricted.id}/messages", v2_body(from_addr))
    # Then it is a 403 with the contract's envelope, as before the rule moved into the domain
    domain = from_addr.rpartition("@")[2]
    assert reply.status == 403
    assert reply.body == {"message": f"from.email: {domain} is not a sender domain of this account"}


# -- ingest -----------------------------------------------------------------------------------------------


@pytest.fixture
def ingest(data_dir: Path) -> Any:
    return load_handler("ingest")


@pytest.fixture
def ingest_dlq(data_dir: Path) -> Queue:
    return ingest_service(IngestSettings()).dead_letters


def ingest_event(account: Account, from_addr: str | None) -> dict[str, Any]:
    event = load_event("sqs_ingest_batch.json")
    body = json.loads(event["Records"][0]["body"])
    body["account_id"] = account.id
    if from_addr is not None:
        body["from"] = from_addr
    event["Records"][0]["body"] = json.dumps(body)
    event["Records"][0]["messageId"] = str(uuid.uuid4())
    return event


@pytest.mark.parametrize("from_addr", [None, "x@sub.acme.example", "x@other.example"])
def test_an_ingest_record_from_another_domain_goes_to_the_dead_letter_queue(
    ingest: Any, ingest_dlq: Queue, restricted: Account, stores: Backends, from_addr: str | None
) -> None:
    # Given a record on the ingest queue for a restricted account, from an unlisted domain (or with
    # no From, so the deployment's default)
    event = ingest_event(restricted, from_addr)
    # When the ingest function takes it
    result = ingest.lambda_handler(event, LocalContext("mailsage-ingest"))
    # Then it is handled (not retried), rejected with the reason, and no job exists
    assert result == {"batchItemFailures": []}
    [dead] = ingest_dlq.receive(max_messages=10)
    domain = (from_addr or "noreply@mailsage.example").rpartition("@")[2]
    assert dead.body["reason"] == f"forbidden: from: {domain} is not a sender domain of this account"
    assert dead.body["record"] == event["Records"][0]["body"]
    assert stores.store.get_job(restricted.id, ingest_job_id(event["Records"][0]["messageId"])) is None
    assert stores.queue.depth() == 0


def test_an_ingest_record_from_a_listed_domain_becomes_a_job(
    ingest: Any, ingest_dlq: Queue, restricted: Account, stores: Backends
) -> None:
    event = ingest_event(restricted, "News <news@Acme.example>")
    assert ingest.lambda_handler(event, LocalContext("mailsage-ingest")) == {"batchItemFailures": []}
    job = stores.store.get_job(restricted.id, ingest_job_id(event["Records"][0]["messageId"]))
    assert job is not None and job.total == 2
    assert ingest_dlq.receive(max_messages=10) == []


# -- the DynamoDB store (AWS backend under moto) --------------------------------------------------------


@pytest.fixture
def aws_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ApiClient, Account, Store]]:
    import boto3

    from mailsage.adapters.aws.dynamodb import DynamoStore
    from mailsage.domain.auth import AuthService
    from tests.contract.aws_store import dynamodb_table
    from tests.moto_env import REGION, use_aws_backend

    suffix = uuid.uuid4().hex[:12]  # names of their own: the wiring caches backends per settings
    with dynamodb_table(f"mailsage-{suffix}") as table:
        sqs = boto3.client("sqs", region_name=REGION)
        send_url = sqs.create_queue(QueueName=f"send-{suffix}")["QueueUrl"]
        use_aws_backend(monkeypatch, tmp_path / "data", table, send_url)
        store = DynamoStore(table)
        account_id = str(uuid.uuid4())
        account = Account(account_id, AuthService(store).create_key(account_id))
        store.put_account(AccountSettings(account_id, sender_domains=DOMAINS))
        yield ApiClient(load_handler("api"), account.key), account, store


def test_the_rule_holds_on_the_dynamodb_store(aws_api: tuple[ApiClient, Account, Store]) -> None:
    # Given a restricted account stored in DynamoDB (moto), and the api handler on the AWS backend
    api, account, _ = aws_api
    # When it sends from a listed domain, an unlisted one, and with the default From, on both surfaces
    allowed = api.post("/api/v1/emails/send", send_body("shop@xn--bcher-kva.example"))
    other = api.post("/api/v1/emails/batch", batch_body("x@other.example"))
    default = api.post("/api/v1/emails/send", send_body(None))
    v2 = api.post(f"/v2/accounts/{account.id}/messages", v2_body("x@sub.acme.example"))
    # Then the listed domain is accepted and the others are refused
    assert allowed.status == 202, allowed.body
    forbidden_v1(other, "other.example")
    forbidden_v1(default, "mailsage.example")
    assert v2.status == 403


def test_the_v2_sender_filter_finds_an_idn_sender_in_either_form(api: ApiClient, restricted: Account) -> None:
    # Given a message sent from an IDN domain (kept with its domain as A-labels)
    messages = f"/v2/accounts/{restricted.id}/messages"
    assert api.post(messages, v2_body("shop@bücher.example")).status == 202
    # When the listing is filtered by that sender, in Unicode and in A-labels
    unicode = api.get(f"{messages}?sender=shop@bücher.example").body["data"]
    ascii_ = api.get(f"{messages}?sender=shop@xn--bcher-kva.example").body["data"]
    # Then both find its two messages (one per recipient)
    assert len(unicode) == len(ascii_) == 2
    assert {m["sender"] for m in unicode} == {"shop@xn--bcher-kva.example"}

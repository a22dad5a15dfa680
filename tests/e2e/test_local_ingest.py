"""Other systems on a laptop: `mailsage serve` runs the real ingest function over its embedded
queue, fed by `mailsage ingest FILE` (JSON lines) and by an SQS queue on a moto server when
MAILSAGE_INGEST_QUEUE_URL names one. Invalid records land in the local dead-letter list, which
`mailsage dead-letters` shows with the reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, free_port, wait_until
from tests.e2e.conftest import LocalServer

pytestmark = pytest.mark.e2e
REGION = "eu-west-1"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSAGE_")}
    env["PYTHONPATH"] = str(ROOT / "layers" / "mailsage" / "python")
    return subprocess.run(
        [sys.executable, "-m", "mailsage.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


def send(account_id: str, to: str) -> dict[str, Any]:
    return {"account_id": account_id, "recipient": {"email": to}, "subject": f"for {to}", "body": "ingested"}


def recipients(server: LocalServer) -> set[str]:
    return {str(m["To"]) for m in server.received()}


def test_records_from_a_file_are_sent_and_the_invalid_ones_dead_lettered(
    server: LocalServer, server_env: dict[str, str], tmp_path: Path
) -> None:
    account_id = server_env["MAILSAGE_DEV_ACCOUNT_ID"]
    batch = {
        "account_id": account_id,
        "subject": "Hi {{ name }}",
        "body": "batch",
        "recipients": [
            {"email": "b1@example.com", "variables": {"name": "One"}},
            {"email": "b2@example.com", "variables": {"name": "Two"}},
        ],
    }
    lines = [
        json.dumps(send(account_id, "one@example.com")),
        json.dumps(batch),
        "",  # blank lines are skipped
        json.dumps({"account_id": account_id, "recipient": {"email": "x@example.com"}}),  # no subject
        "this is not JSON",
    ]
    records = tmp_path / "records.jsonl"
    records.write_text("\n".join(lines) + "\n")

    queued = cli("ingest", str(records), "--data-dir", str(server.data_dir))
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout.startswith("4 records queued")

    expected = {"one@example.com", "b1@example.com", "b2@example.com"}
    assert wait_until(lambda: recipients(server) >= expected, 60), recipients(server)

    def dead() -> list[dict[str, Any]]:
        listed = cli("dead-letters", "--data-dir", str(server.data_dir))
        assert listed.returncode == 0, listed.stderr
        return list(json.loads(listed.stdout)["ingest"])

    assert wait_until(lambda: len(dead()) == 2, 30), dead()
    reasons = sorted(entry["reason"] for entry in dead())
    assert any("give the content" in reason for reason in reasons), reasons
    assert any("must be a JSON object" in reason for reason in reasons), reasons
    assert recipients(server) == expected  # nothing else went out, nothing twice


def test_a_file_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    done = cli("ingest", str(tmp_path / "missing.jsonl"), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 1
    assert done.stderr.strip().startswith("mailsage ingest: cannot read")
    assert "Traceback" not in done.stderr


def _client(aws: dict[str, str]) -> Any:
    import boto3

    return boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=aws["AWS_ENDPOINT_URL"],
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def sqs_on_moto() -> Iterator[tuple[dict[str, str], str]]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    aws = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    sqs = _client(aws)
    url = sqs.create_queue(QueueName="other-system-ingest")["QueueUrl"]
    try:
        yield aws, url
    finally:
        moto.stop()


def test_records_from_an_sqs_queue_on_a_moto_server(
    tmp_path: Path, server_env: dict[str, str], sqs_on_moto: tuple[dict[str, str], str]
) -> None:
    aws, url = sqs_on_moto
    env = {**server_env, **aws, "MAILSAGE_INGEST_QUEUE_URL": url}
    server = LocalServer(tmp_path / "data", env).start()
    try:
        sqs = _client(aws)
        account_id = server_env["MAILSAGE_DEV_ACCOUNT_ID"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(send(account_id, "sqs@example.com")))
        sqs.send_message(QueueUrl=url, MessageBody="{not json")
        assert wait_until(lambda: recipients(server) == {"sqs@example.com"}, 60), recipients(server)

        def queue_empty() -> bool:
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            return (
                attributes["ApproximateNumberOfMessages"]
                == attributes["ApproximateNumberOfMessagesNotVisible"]
                == "0"
            )

        assert wait_until(queue_empty, 30)  # both deleted: the valid one sent, the other dead-lettered
        listed = json.loads(cli("dead-letters", "--data-dir", str(server.data_dir)).stdout)["ingest"]
        assert [entry["reason"] for entry in listed] == ["invalid record: the record must be a JSON object"]
    finally:
        server.stop()

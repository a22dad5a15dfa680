"""`mailsage invoke <function> events/<file>.json` runs one real handler with a sample event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailsage.cli import main
from tests.conftest import EVENTS


def invoke(function: str, event: str, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["invoke", function, str(EVENTS / event), "--data-dir", str(data_dir)]) == 0
    return json.loads(capsys.readouterr().out)


def test_invoking_the_api_with_the_send_sample_accepts_the_email(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = invoke("api", "api_send.json", data_dir, capsys)
    assert result["statusCode"] == 202, result
    assert json.loads(result["body"])["status"] == "queued"


def test_invoking_the_api_with_the_job_sample_answers_not_found(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = invoke("api", "api_get_job.json", data_dir, capsys)
    assert result["statusCode"] == 404
    assert json.loads(result["body"])["error"]["code"] == "not_found"


def test_invoking_the_sender_with_a_chunk_of_an_unknown_job_drops_it(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = invoke("sender", "sqs_send_chunk.json", data_dir, capsys)
    assert result == {"batchItemFailures": []}


def test_create_key_makes_a_key_that_authenticates(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mailsage.domain.auth import AuthService
    from mailsage.settings import CommonSettings
    from mailsage.wiring import backends

    assert main(["create-key", "--data-dir", str(data_dir), "--default-provider", "default"]) == 0
    out = capsys.readouterr().out
    account_id = out.split("account id:")[1].split()[0]
    key = out.split("API key:")[1].split()[0]
    store = backends(CommonSettings()).store
    assert AuthService(store).authenticate(f"Bearer {key}") == account_id
    assert store.get_account(account_id).default_provider == "default"  # type: ignore[union-attr]


def test_create_key_on_a_deployed_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3
    from moto import mock_aws

    from mailsage.adapters.aws.dynamodb import DynamoStore
    from mailsage.adapters.aws.table import create_table_kwargs
    from mailsage.domain.auth import AuthService

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        boto3.client("dynamodb").create_table(**create_table_kwargs("mailsage"))
        account_id = "6f1c2b7e-3f4a-4b8e-9c1d-2a3b4c5d6e7f"
        assert main(["create-key", "--table-name", "mailsage", "--account-id", account_id]) == 0
        key = capsys.readouterr().out.split("API key:")[1].split()[0]
        assert AuthService(DynamoStore("mailsage")).authenticate(f"Bearer {key}") == account_id

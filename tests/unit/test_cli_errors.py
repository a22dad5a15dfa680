"""CLI errors a first deploy meets are one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from mailsage.cli import main


def test_a_malformed_account_id_is_one_usage_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["create-key", "--account-id", "not-a-uuid"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "not a UUID: 'not-a-uuid'" in err
    assert "Traceback" not in err


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("dynamodb", region_name="eu-west-1")


def test_a_table_that_is_not_there_is_one_line_naming_the_fix(
    aws, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create-key", "--table-name", "NoSuchTable", "--region", "eu-west-1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("mailsage create-key: ")
    assert "ResourceNotFoundException" in err and "--region" in err
    assert "\n" not in err


def test_a_key_on_the_deployed_table(aws, capsys: pytest.CaptureFixture[str]) -> None:
    aws.create_table(
        TableName="Deployed",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    account = "6F1C2B7E-3F4A-4B8E-9C1D-2A3B4C5D6E7F"
    assert main(["create-key", "--table-name", "Deployed", "--account-id", account]) == 0
    out = capsys.readouterr().out
    assert f"account id: {account.lower()}" in out
    assert aws.scan(TableName="Deployed")["Count"] >= 1


def test_any_other_failure_is_one_line_unless_debugging(
    tmp_path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.delenv("MAILSAGE_DEBUG", raising=False)
    monkeypatch.delenv("MAILSAGE_DATA_DIR", raising=False)
    assert main(["dead-letters", "--data-dir", str(blocked / "data")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("mailsage dead-letters: ") and "MAILSAGE_DEBUG=1" in err
    assert "\n" not in err and "Traceback" not in err

    monkeypatch.setenv("MAILSAGE_DEBUG", "1")
    with pytest.raises(Exception):  # noqa: B017 - whatever the data directory's failure is
        main(["dead-letters", "--data-dir", str(blocked / "data")])


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"mailsage {version('mailsage')}"

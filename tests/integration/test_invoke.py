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

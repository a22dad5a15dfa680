"""What a cold start loads: each handler module, imported in a fresh interpreter with the deployed
environment, brings in only what its function uses (the cold-start budget of bench/cold_start.py
depends on it). Times are the benchmark's business; this checks which modules are loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOAD = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(json.dumps(sorted(sys.modules)))
"""
AWS_ENV = {
    "MAILSAGE_BACKEND": "aws",
    "MAILSAGE_TABLE_NAME": "mailsage-test",
    "MAILSAGE_SEND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/send",
    "MAILSAGE_SEND_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/send-dlq",
    "MAILSAGE_INGEST_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/ingest-dlq",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def loaded(function: str, tmp_path: Path) -> set[str]:
    env = {"PATH": "/usr/bin:/bin", "MAILSAGE_DATA_DIR": str(tmp_path), **AWS_ENV}
    out = subprocess.run(
        [sys.executable, "-c", LOAD, str(ROOT / "functions" / function / "handler.py")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(out.stdout))


def under(modules: set[str], *packages: str) -> set[str]:
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)}


@pytest.mark.parametrize("function", ["api", "sender", "ingest", "events", "webhooks"])
def test_on_aws_no_function_loads_sqlite_or_creates_clients(function: str, tmp_path: Path) -> None:
    modules = loaded(function, tmp_path)
    assert "mailsage" in modules  # the handler did load the package
    assert under(modules, "mailsage.adapters.sqlite", "sqlite3") == set()
    # boto3 clients are made on first use, not at import.
    assert under(modules, "boto3") == set()


def test_the_api_does_not_load_the_sending_side(tmp_path: Path) -> None:
    modules = loaded("api", tmp_path)
    assert "mailsage.api.app" in modules
    assert (
        under(
            modules,
            "mailsage.domain.delivery",
            "mailsage.domain.feedback",
            "mailsage.domain.mime",
            "mailsage.domain.webhook_delivery",
            "mailsage.adapters.smtp",
            "jinja2",
        )
        == set()
    )


def test_the_sender_does_not_load_the_api(tmp_path: Path) -> None:
    modules = loaded("sender", tmp_path)
    assert "mailsage.domain.delivery" in modules  # loaded at cold start: every invocation delivers
    assert under(modules, "mailsage.api", "aws_lambda_powertools.event_handler") == set()

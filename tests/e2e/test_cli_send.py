"""The CLI's API and key commands as a user runs them, against one live `mailsage serve` for the
module: send, batch from CSV and JSON lines in pages (progress on stderr, a re-run sends no one
twice), jobs pause/resume/stop, keys create/list/revoke, and one-line errors. The key commands on
a deployed table run in-process against DynamoDB under moto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsage import cli
from tests.conftest import wait_until
from tests.contract.aws_store import dynamodb_table
from tests.e2e.conftest import LocalServer

pytestmark = pytest.mark.e2e
# The sink's pace (messages/s) and one sender: a job of JOB_SIZE (chunks of 50, 50 and 1, one in
# flight at a time) is still running seconds after it is submitted, when it is paused or stopped.
SEND_RATE = 40
JOB_SIZE = 101
# The server's batch limit, below the CLI's default page size: the CLI cuts its pages again at it.
BATCH_LIMIT = 150
RUN_BOUND_SECONDS = 120  # liveness bound of one CLI run, not a timing


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSAGE_")}
    env["MAILSAGE_ACCOUNT_RATE_LIMIT"] = env["MAILSAGE_ACCOUNT_RATE_BURST"] = "100000"
    env["MAILSAGE_MAX_BATCH_RECIPIENTS"] = str(BATCH_LIMIT)
    # No MAILSAGE_DEV_API_KEY: the server keeps its dev key in the data dir, where the CLI finds it.
    srv = LocalServer(tmp_path_factory.mktemp("cli") / "data", env, workers=1)
    env["MAILSAGE_SMTP_URL"] = f"smtp://127.0.0.1:{srv.smtp_port}?max_rate={SEND_RATE}"
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def no_connection_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAILSAGE_URL", "MAILSAGE_API_KEY", "MAILSAGE_DEV_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def options(server: LocalServer, args: tuple[str, ...], key: str | None) -> list[str]:
    """The server's data dir; for an API command its URL, and the key unless the dev key serves."""
    if args[0] in ("keys", "create-key"):
        return ["--data-dir", str(server.data_dir)]
    return ["--url", server.url, "--data-dir", str(server.data_dir)] + (["--api-key", key] if key else [])


def mailsage(
    server: LocalServer, *args: str, stdin: str | None = None, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`mailsage ARGS` in a shell without any MAILSAGE_ variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSAGE_")}
    extra = options(server, args, key)
    return subprocess.run(
        [sys.executable, "-m", "mailsage.cli", *args, *extra],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=RUN_BOUND_SECONDS,
    )


def run(
    capsys: pytest.CaptureFixture[str], server: LocalServer, *args: str, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The same command in this process (no interpreter start: quicker, so a job just submitted
    is still running when the next command acts on it)."""
    capsys.readouterr()
    status = cli.main([*args, *options(server, args, key)])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), status, captured.out, captured.err)


def recipients_in_outbox(server: LocalServer) -> Counter[str]:
    return Counter(message["To"].addresses[0].addr_spec for message in server.received())


def stdout_value(result: subprocess.CompletedProcess[str], label: str) -> str:
    [line] = [line for line in result.stdout.splitlines() if line.startswith(label)]
    return line.split(":", 1)[1].split()[0]


def job_ids(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split()[1].rstrip(":") for line in result.stdout.splitlines() if line.startswith("job ")]


def test_send_with_the_local_dev_key_reaches_the_sink(server: LocalServer) -> None:
    # Given a running server and no API key in the shell
    # When one email is sent
    result = mailsage(
        server,
        "send",
        "--to",
        "solo@example.com",
        "--subject",
        "Hi {{ who }}",
        "--text",
        "Hello",
        "--var",
        "who=you",
    )
    # Then the ids are printed and the sink receives it, rendered
    assert result.returncode == 0, result.stderr
    assert stdout_value(result, "job id") and stdout_value(result, "message id")
    assert wait_until(lambda: recipients_in_outbox(server)["solo@example.com"] == 1, 30)
    [message] = [m for m in server.received() if m["To"].addresses[0].addr_spec == "solo@example.com"]
    assert message["Subject"] == "Hi you"


def test_batch_from_csv_in_pages_sends_everyone_once_even_when_run_again(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a CSV of 24 good recipients and one that the API rejects
    rows = [f"csv{i}@example.com,Reader {i},{i}" for i in range(24)] + ["not-an-address,Nobody,0"]
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("email,name,code\n" + "\n".join(rows) + "\n")
    command = ("batch", str(csv_file), "--subject", "Code {{ code }}", "--text", "Your code: {{ code }}")
    # When it is sent in pages of 10
    first = run(capsys, server, *command, "--page-size", "10", "--campaign", "spring")
    # Then three jobs were made and followed to the end, with the progress on stderr
    assert first.returncode == 0, first.stderr
    assert len(job_ids(first)) == 3
    assert "24/24 (100%)" in first.stderr
    assert "accepted 24, rejected 1" in first.stdout and "sent 24, failed 0" in first.stdout
    assert "line 26 not-an-address: invalid_recipient" in first.stdout
    assert wait_until(
        lambda: sum(recipients_in_outbox(server)[f"csv{i}@example.com"] for i in range(24)) == 24
    )
    assert all(recipients_in_outbox(server)[f"csv{i}@example.com"] == 1 for i in range(24))
    # When the same command runs again (as after a crash)
    again = run(capsys, server, *command, "--page-size", "10", "--campaign", "spring")
    # Then the same jobs answer and no one gets a second email
    assert again.returncode == 0, again.stderr
    assert job_ids(again) == job_ids(first)
    assert all(recipients_in_outbox(server)[f"csv{i}@example.com"] == 1 for i in range(24))


def test_batch_from_json_lines_on_stdin_with_a_template(server: LocalServer) -> None:
    # Given a template and 12 recipients as JSON lines
    created = server.call(
        "POST",
        "/api/v1/templates",
        {"name": "cli", "subject": "For {{ plan }}", "text": "Plan {{ plan }} {{ team }}"},
    )
    assert created.status_code == 201, created.text
    lines = [
        json.dumps({"email": f"jl{i}@example.com", "name": f"J{i}", "variables": {"plan": f"p{i}"}})
        for i in range(12)
    ]
    # When they are sent from stdin in pages of 5, with a variable shared by all
    result = mailsage(
        server,
        "batch",
        "-",
        "--format",
        "jsonl",
        "--template",
        created.json()["template_id"],
        "--var",
        "team=blue",
        "--page-size",
        "5",
        stdin="\n".join(lines) + "\n",
    )
    # Then three jobs sent everyone, each with their own variables and the shared one
    assert result.returncode == 0, result.stderr
    assert len(job_ids(result)) == 3 and "sent 12, failed 0" in result.stdout
    bodies = {m["To"].addresses[0].addr_spec: m.get_body(("plain",)).get_content() for m in server.received()}  # type: ignore[union-attr]
    assert all(f"Plan p{i} blue" in bodies[f"jl{i}@example.com"] for i in range(12))


def test_jobs_pause_resume_and_stop(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a job submitted without waiting
    resumed = submit_without_waiting(server, tmp_path, capsys, "resumed")
    # When it is paused / Then it says so, and get --json shows the API's reply
    paused = run(capsys, server, "jobs", "pause", resumed)
    assert paused.returncode == 0, paused.stderr
    assert "state:     paused" in paused.stdout
    got = run(capsys, server, "jobs", "get", resumed, "--json")
    assert json.loads(got.stdout)["state"] == "paused"
    # When it is resumed / Then it finishes, everyone sent once
    assert run(capsys, server, "jobs", "resume", resumed).returncode == 0
    server.wait_for(resumed, {"completed"})
    # When another one is stopped / Then it stays stopped with some recipients never sent
    stopped = submit_without_waiting(server, tmp_path, capsys, "stopped")
    halted = run(capsys, server, "jobs", "stop", stopped)
    assert halted.returncode == 0, halted.stderr
    assert "state:     stopped" in halted.stdout
    job = server.wait_settled(stopped)
    assert job["state"] == "stopped" and job["counts"]["cancelled"] > 0
    sent = recipients_in_outbox(server)
    assert all(sent[f"resumed{i}@example.com"] == 1 for i in range(JOB_SIZE))
    assert sum(1 for address in sent if address.startswith("stopped")) < JOB_SIZE


def submit_without_waiting(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> str:
    csv_file = tmp_path / f"{name}.csv"
    csv_file.write_text("email\n" + "".join(f"{name}{i}@example.com\n" for i in range(JOB_SIZE)))
    # The default page size (1000) is over the server's limit: its refusal of the first page (nothing
    # sent) makes the CLI submit pages of BATCH_LIMIT, here one.
    submitted = run(capsys, server, "batch", str(csv_file), "--subject", "s", "--text", "t", "--no-wait")
    assert submitted.returncode == 0, submitted.stderr
    [job_id] = job_ids(submitted)
    return job_id


def test_keys_create_then_revoke_gives_401(server: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a key created on the server's own store
    created = mailsage(server, "keys", "create")
    assert created.returncode == 0, created.stderr
    key, key_id = stdout_value(created, "API key"), stdout_value(created, "key id")
    send = ("send", "--to", "keyed@example.com", "--subject", "s", "--text", "t")
    assert run(capsys, server, *send, key=key).returncode == 0
    # When it is revoked / Then the API refuses it, in one line
    revoked = mailsage(server, "keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    refused = run(capsys, server, *send, key=key)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "401 unauthorized" in refused.stderr


def test_a_bad_file_stops_before_anything_is_sent(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("email,name\nok@example.com,Ok\n,No address\n")
    before = len(server.outbox())
    result = run(capsys, server, "batch", str(csv_file), "--subject", "s", "--text", "t")
    assert result.returncode == 2
    assert result.stderr == f"mailsage batch: {csv_file}: line 3: no email\n"
    assert len(server.outbox()) == before


def test_an_unknown_job_is_one_line_with_the_api_code(
    server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, server, "jobs", "get", str(uuid.uuid4()))
    assert result.returncode == 1
    assert result.stderr.startswith("mailsage jobs: 404 not_found:") and result.stderr.count("\n") == 1


def test_without_a_key_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a data dir with no dev key and no key in the environment
    args = ["send", "--to", "a@example.com", "--text", "t", "--url", "http://127.0.0.1:9"]
    # When an API command runs / Then it stops before any request, in one line
    assert cli.main([*args, "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "mailsage send: no API key: pass --api-key or set MAILSAGE_API_KEY\n"


def test_without_the_client_installed_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "mailsage_client", None)  # import fails as when not installed
    status = cli.main(
        ["send", "--to", "a@example.com", "--text", "t", "--api-key", "k", "--url", "http://127.0.0.1:9"]
    )
    assert status == 1
    assert capsys.readouterr().err.strip().endswith("pip install ./clients/python (from the repository)")


def test_keys_on_a_deployed_table(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a deployed table (DynamoDB under moto)
    with dynamodb_table() as table:
        # When a key is created, listed and revoked there
        assert cli.main(["keys", "create", "--table-name", table]) == 0
        created = capsys.readouterr().out
        key_id = created.split("key id:")[1].split()[0]
        assert cli.main(["keys", "list", "--table-name", table, "--json"]) == 0
        [listed] = json.loads(capsys.readouterr().out)
        assert cli.main(["keys", "list", "--table-name", table, "--account-id", listed["account_id"]]) == 0
        table_lines = capsys.readouterr().out.splitlines()
        assert cli.main(["keys", "revoke", key_id, "--table-name", table]) == 0
        capsys.readouterr()
        # Then it was listed with its account and time (never the key), then gone
        key = created.split("API key:")[1].split()[0]
        assert listed["key_id"] == key_id and listed["account_id"] in created
        assert table_lines[0].split() == ["KEY", "ID", "ACCOUNT", "CREATED"]
        assert table_lines[1].split() == [key_id, listed["account_id"], listed["created_at"]]
        assert key not in json.dumps(listed) + "".join(table_lines)
        assert cli.main(["keys", "list", "--table-name", table, "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == []
        assert cli.main(["keys", "revoke", key_id, "--table-name", table]) == 1


def test_the_banners_try_it_line_sends(server: LocalServer) -> None:
    """`mailsage serve` prints a first send to copy into another terminal: it works as printed."""
    import shlex

    [line] = [line for line in server.banner.splitlines() if line.strip().startswith("try it:")]
    command = shlex.split(line.split(":", 1)[1])
    assert command[:2] == ["mailsage", "send"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSAGE_")}
    result = subprocess.run(
        [sys.executable, "-m", "mailsage.cli", *command[1:]],
        capture_output=True,
        text=True,
        env=env,
        timeout=RUN_BOUND_SECONDS,
    )
    assert result.returncode == 0, result.stderr
    assert wait_until(lambda: recipients_in_outbox(server)["you@example.com"] == 1, 30)

"""`make run` installs only `.[local]` and the Python client: in a virtualenv with nothing else,
`mailsage serve` starts, `mailsage send` hands it an email and the built-in sink receives it (no
boto3, no CDK)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, wait_until

pytestmark = pytest.mark.e2e
INSTALL_BOUND_SECONDS = 600  # liveness bounds, not timings
START_BOUND_SECONDS = 60


def _run_install(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # The Makefile's own recipe (RUN_STAMP), so the test cannot drift from what `make run` does.
    recipe = re.search(r"^\$\(RUN_STAMP\):.*?\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "Makefile has no RUN_STAMP recipe"
    [install] = [line for line in recipe.group(1).splitlines() if "pip install" in line]
    # Exactly what it installs: the package with the `local` extra, and the Python client.
    editable = re.findall(r"-e '?([^' ]+)'?", install)
    assert editable == [".[local]", "clients/python"], install
    args = [arg for path in editable for arg in ("-e", f"{ROOT}/{path.removeprefix('.')}")]
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *args],
        check=True,
        timeout=INSTALL_BOUND_SECONDS,
    )


def test_what_make_run_installs_serves_and_sends(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run_install(venv)
    python = str(venv / "bin" / "python")
    for heavy in ("boto3", "aws_cdk", "pytest"):
        found = subprocess.run([python, "-c", f"import {heavy}"], capture_output=True, timeout=60)
        assert found.returncode != 0, f"{heavy} is installed by what `make run` installs"

    port, smtp_port, data_dir = free_port(), free_port(), tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILSAGE_", "PYTHONPATH"))}
    server = subprocess.Popen(
        [str(venv / "bin" / "mailsage"), "serve", "--data-dir", str(data_dir)]
        + ["--port", str(port), "--smtp-port", str(smtp_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(3)]
        assert any("API key:" in line for line in lines), lines
        # The CLI sends through the client, with the dev key `serve` keeps in the data directory.
        sent = subprocess.run(
            [str(venv / "bin" / "mailsage"), "send", "--url", f"http://127.0.0.1:{port}"]
            + ["--data-dir", str(data_dir), "--to", "light@example.com", "--subject", "light"]
            + ["--text", "installed"],
            capture_output=True,
            text=True,
            env=env,
            timeout=START_BOUND_SECONDS,
        )
        assert sent.returncode == 0, sent.stderr
        assert "job" in sent.stdout, sent.stdout
        outbox = data_dir / "outbox"
        assert wait_until(lambda: any(outbox.glob("*.eml")), START_BOUND_SECONDS)
        [message] = outbox.glob("*.eml")
        assert b"Subject: light" in message.read_bytes()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=START_BOUND_SECONDS)

"""The README's walkthrough, run as written: every `curl` of its sections, in order, through bash
against a live `mailsage serve`, each reply checked against the `# <status> {...}` comment under it.
A renamed route, a changed reply or a stale example makes this fail."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import LocalServer

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
# (first heading, last heading): each span runs to the heading after its last one.
SECTIONS = [
    ("## Walkthrough", "### Idempotency"),
    ("## AhaSend v2-compatible API", "### Provoking failures locally"),
]
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
STATUS_MARK = "\n__http_status__ "
# Every curl gets a bounded time and prints its status after the body; the README's text is untouched.
CURL_SHIM = "curl() { command curl --max-time 20 -w '\\n__http_status__ %{http_code}' \"$@\"; }\n"
# Without curl, bash still expands the command (variables, `$(date ...)`) and hands over its words.
ARGV_SHIM = "curl() { printf '%s\\0' \"$@\"; }\n"


@dataclass
class Command:
    text: str
    status: int | None = None
    shape: Any = None
    comment: list[str] = field(default_factory=list)


def section_text(readme: str) -> str:
    """The README's lines inside SECTIONS; a missing heading fails (the sections were renamed)."""
    lines = readme.splitlines()
    fenced, headings = False, []
    for i, line in enumerate(lines):
        fenced ^= line.startswith("```")
        if not fenced and line.startswith("#"):
            headings.append(i)
    spans = []
    for first, last in SECTIONS:
        assert first in lines and last in lines, f"README lost its {first!r} .. {last!r} sections"
        start, end_heading = lines.index(first), lines.index(last)
        end = next((i for i in headings if i > end_heading), len(lines))
        spans.append("\n".join(lines[start:end]))
    return "\n".join(spans)


def bash_blocks(text: str) -> list[list[str]]:
    return [block.splitlines() for block in re.findall(r"```bash\n(.*?)```", text, re.S)]


def split_comment(line: str, in_quote: str | None) -> tuple[str, str | None, str | None]:
    """(code, comment, open quote at the end): a shell comment starts at a `#` after a blank,
    outside quotes; `in_quote` is the quote a previous line left open."""
    quote, escaped = in_quote, False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote is not None:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], line[i + 1 :].strip(), None
    return line, None, quote


def commands_of(block: list[str]) -> list[Command]:
    """Shell commands (joined across continuation lines and multi-line quotes) with their comments."""
    commands: list[Command] = []
    current: list[str] = []
    quote: str | None = None
    for line in block:
        code, comment, quote = split_comment(line, quote)
        if code.strip() or current:
            current.append(code)
        if current and quote is None and not code.rstrip().endswith("\\"):
            commands.append(Command("\n".join(current).strip()))
            current = []
        if comment is not None and commands:
            commands[-1].comment.append(comment)
    assert not current, f"unfinished command in the README: {current}"
    return commands


def expectation(command: Command) -> None:
    """`# 202 {...}` (the JSON may go on over the following comment lines, and may elide with
    `...`): the status and the shape of the reply. Other comments are prose."""
    starts = [i for i, c in enumerate(command.comment) if re.match(r"(\d{3}\b|\{)", c)]
    if not starts:
        return
    match = re.match(r"(\d{3})?\s*(\{.*)?$", " ".join(command.comment[starts[0] :]))
    assert match is not None
    command.status = int(match.group(1)) if match.group(1) else 200
    if match.group(2):
        command.shape = parse_shape(first_object(match.group(2)))


def first_object(text: str) -> str:
    depth, quote = 0, False
    for i, ch in enumerate(text):
        if ch == '"' and text[i - 1] != "\\":
            quote = not quote
        elif not quote and ch in "{[":
            depth += 1
        elif not quote and ch in "}]":
            depth -= 1
            if depth == 0:
                return text[: i + 1]
    raise AssertionError(f"unbalanced reply in a README comment: {text}")


def parse_shape(text: str) -> Any:
    """The README's elided JSON as JSON: `, ...` drops, `{...}`/`[...]` are empty, a bare `...`
    value is any value."""
    text = re.sub(r",\s*\.\.\.(?=\s*[}\]])", "", text)
    text = re.sub(r"\{\s*\.\.\.\s*\}", "{}", text)
    text = re.sub(r"\[\s*\.\.\.\s*\]", "[]", text)
    text = re.sub(r":\s*\.\.\.(?=\s*[,}])", ': "..."', text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"a README reply comment is not JSON with `...`: {text}") from exc


def string_pattern(expected: str) -> str:
    """`...` is any text; `<uuid>` alone is a bare UUID, `uuid` inside `<...>` is one there."""
    if expected == "<uuid>":
        return UUID
    pattern = re.escape(expected).replace(re.escape("..."), ".*")
    return pattern.replace("<uuid", "<" + UUID) if expected.startswith("<uuid") else pattern


def assert_shape(expected: Any, actual: Any, where: str) -> None:
    if expected == "...":
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}: no {key!r} in {sorted(actual)}"
            assert_shape(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) >= len(expected), f"{where}: {actual!r}"
        for i, value in enumerate(expected):
            assert_shape(value, actual[i], f"{where}[{i}]")
    elif isinstance(expected, str):
        assert isinstance(actual, str) and re.fullmatch(string_pattern(expected), actual, re.S), (
            f"{where}: {actual!r} is not {expected!r}"
        )
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def readme_commands() -> list[Command]:
    commands = [c for block in bash_blocks(section_text(README.read_text())) for c in commands_of(block)]
    for command in commands:
        expectation(command)
    return commands


def bare(message_id: str) -> str:
    return message_id.strip("<>").split("@", 1)[0]


def first_id(reply: dict[str, Any]) -> str | None:
    data = reply.get("data")
    return bare(data[0]["id"]) if isinstance(data, list) and data and "id" in data[0] else None


# Where a reader finds each exported id: the latest reply that has it.
FROM_REPLIES = {"TPL": lambda r: r.get("template_id"), "JOB": lambda r: r.get("job_id"), "MSG": first_id}


class Walk:
    """The shell's variables as a reader sets them: `export` lines take their value from the
    server or from earlier replies."""

    def __init__(self, server: LocalServer, runner: str) -> None:
        self.server = server
        self.runner = runner
        self.replies: list[Any] = []
        self.env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}

    def source(self, name: str) -> str:
        fixed = {
            "MS": self.server.url,
            "KEY": self.server.key,
            "ACCOUNT": self.server.env["MAILSAGE_DEV_ACCOUNT_ID"],
        }
        if name in fixed:
            return fixed[name]
        assert name in FROM_REPLIES, f"the README exports {name}: say where its value comes from"
        for reply in reversed(self.replies):
            value = FROM_REPLIES[name](reply) if isinstance(reply, dict) else None
            if value:
                return str(value)
        raise AssertionError(f"no earlier reply gives {name}")

    def export(self, text: str) -> None:
        for name in re.findall(r"(?:^|\s)([A-Z_]+)=", text):
            self.env[name] = self.source(name)

    def run(self, command: Command) -> tuple[int, str]:
        shim = CURL_SHIM if self.runner == "curl" else ARGV_SHIM
        done = subprocess.run(
            ["bash", "-c", shim + command.text], env=self.env, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, f"{command.text}\n{done.stderr}"
        if self.runner != "curl":
            return request_from(done.stdout.split("\0")[:-1])
        body, _, status = done.stdout.rpartition(STATUS_MARK)
        assert status.strip().isdigit(), f"{command.text}: no status in {done.stdout!r}"
        return int(status), body


def request_from(argv: list[str]) -> tuple[int, str]:
    """The request a curl command line makes (the options the README uses), made with requests."""
    method, url, headers, data = "GET", "", {}, None
    words = iter(argv)
    for word in words:
        if word == "-X":
            method = next(words)
        elif word == "-H":
            name, _, value = next(words).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            data, method = next(words).encode(), method if method != "GET" else "POST"
        elif word != "-s":
            assert not word.startswith("-") and not url, f"a curl option this test does not know: {argv}"
            url = word
    reply = requests.request(method, url, headers=headers, data=data, timeout=20)
    return reply.status_code, reply.text


def test_the_readme_parses_into_commands_with_replies() -> None:
    # Given the README's walkthrough and v2 sections
    commands = readme_commands()
    # Then they hold the calls a reader makes, and nearly every one says what it answers
    curls = [c for c in commands if c.text.startswith("curl ")]
    assert len(curls) >= 20
    assert all(c.text.startswith(("curl ", "export ")) for c in commands), [c.text for c in commands]
    assert sum(c.status is not None for c in curls) >= len(curls) - 3
    # and no example id is a made-up `msg_...`
    assert "msg_" not in section_text(README.read_text())


@pytest.mark.skipif(shutil.which("bash") is None, reason="the README's commands are bash")
@pytest.mark.parametrize("runner", ["curl", "requests"])
def test_the_readme_walkthrough_runs_as_written(server: LocalServer, runner: str) -> None:
    if runner == "curl" and shutil.which("curl") is None:
        pytest.skip("curl is not installed: the same requests run with requests")
    # Given a live `mailsage serve` and the README's commands in order
    walk = Walk(server, runner)
    ran, previous = 0, ""
    for command in readme_commands():
        if command.text.startswith("export "):
            walk.export(command.text)
            continue
        # When each runs in bash as a reader would paste it
        status, body = walk.run(command)
        reply = json.loads(body) if body.strip() else None
        if "Idempotency-Key" in command.text and command.text == previous:
            assert reply == walk.replies[-1], "a retry with the same Idempotency-Key got another reply"
        walk.replies.append(reply)
        previous, ran = command.text, ran + 1
        # Then it answers what the README says under it (or succeeds, where it says nothing)
        if command.status is None:
            assert status < 400, f"{command.text}\n{status} {body}"
            continue
        assert status == command.status, f"{command.text}\n{status} {body}"
        if command.shape is not None:
            assert_shape(command.shape, reply, command.text.splitlines()[0].rstrip(" \\"))
    assert ran >= 20
    # And the v2 id the README says is a UUID is one
    assert uuid.UUID(walk.source("MSG"))

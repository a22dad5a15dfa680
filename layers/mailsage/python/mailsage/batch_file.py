"""Recipients for `mailsage batch` from a CSV or JSON-lines file, checked whole before anything is
sent: the first bad row stops the command with its line number.

CSV: a header row with an `email` column, an optional `name`, every other column a variable.
JSON lines: one `{"email": ..., "name": ..., "variables": {...}}` object per line."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
JSON_FIELDS = frozenset({"email", "name", "variables"})


class BadFile(ValueError):
    """One line for the user: where the file is wrong and how."""


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    line: int = 0  # where it is in the file, for the messages about it

    def as_json(self, shared: Mapping[str, Any]) -> dict[str, Any]:
        """The API's recipient object; the row's own variables win over the shared ones."""
        body: dict[str, Any] = {"email": self.email, "variables": {**shared, **self.variables}}
        if self.name:
            body["name"] = self.name
        return body


@dataclass(frozen=True)
class BatchFile:
    recipients: list[Recipient]
    digest: str  # SHA-256 of the file's bytes

    def key_base(self, options: Mapping[str, Any]) -> str:
        """The default base of the pages' idempotency keys: the file and what is sent to it. Another
        subject or template is another submission (one that fixes a refused one goes through)."""
        canonical = json.dumps(options, sort_keys=True, separators=(",", ":"), default=str)
        return "mailsage-batch-" + hashlib.sha256(f"{self.digest}\n{canonical}".encode()).hexdigest()[:32]

    def pages(self, size: int) -> list[list[Recipient]]:
        return [self.recipients[start : start + size] for start in range(0, len(self.recipients), size)]


def format_of(path: str, given: str | None) -> str:
    """`csv` or `jsonl`: as given, else from the file name's extension."""
    if given:
        return given
    if path == "-":
        raise BadFile("reading stdin: say which format it is with --format csv|jsonl")
    for extension, fmt in FORMATS.items():
        if path.lower().endswith(extension):
            return fmt
    raise BadFile(f"{path}: unknown extension; name it .csv or .jsonl, or pass --format csv|jsonl")


def parse(data: bytes, fmt: str) -> BatchFile:
    try:
        text = data.decode("utf-8-sig")  # a spreadsheet's BOM is not part of the first column's name
    except UnicodeDecodeError as exc:
        raise BadFile(f"not UTF-8 text (byte {exc.start})") from None
    recipients = list(_csv_rows(text) if fmt == "csv" else _json_rows(text))
    if not recipients:
        raise BadFile("no recipients in the file")
    return BatchFile(recipients, hashlib.sha256(data).hexdigest())


def _csv_rows(text: str) -> Iterator[Recipient]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return
        columns = [name.strip() for name in header]
        if "email" not in columns:
            raise BadFile(f"line 1: the header has no 'email' column (it has: {', '.join(columns)})")
        if len(set(columns)) != len(columns) or "" in columns:
            raise BadFile("line 1: every column needs a name of its own")
        for row in reader:
            if not row or row == [""]:
                continue  # a blank line
            if len(row) != len(columns):
                raise BadFile(f"line {reader.line_num}: {len(row)} fields, the header has {len(columns)}")
            yield _csv_recipient(dict(zip(columns, row, strict=True)), reader.line_num)
    except csv.Error as exc:
        raise BadFile(f"line {reader.line_num}: not valid CSV ({exc})") from None


def _csv_recipient(row: dict[str, str], line: int) -> Recipient:
    email = row.pop("email").strip()
    if not email:
        raise BadFile(f"line {line}: no email")
    name = row.pop("name", "").strip() or None
    return Recipient(email, name, row, line)


def _json_rows(text: str) -> Iterator[Recipient]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise BadFile(f"line {number}: not valid JSON ({exc})") from None
        yield _json_recipient(row, number)


def _json_recipient(row: Any, line: int) -> Recipient:
    if not isinstance(row, dict):
        raise BadFile(f'line {line}: expected an object like {{"email": "...", "variables": {{...}}}}')
    unknown = sorted(set(row) - JSON_FIELDS)
    if unknown:
        raise BadFile(f"line {line}: unknown field {unknown[0]!r} (expected email, name, variables)")
    email, name, variables = row.get("email"), row.get("name"), row.get("variables", {})
    if not isinstance(email, str) or not email.strip():
        raise BadFile(f"line {line}: no email")
    if name is not None and not isinstance(name, str):
        raise BadFile(f"line {line}: name must be a string")
    if not isinstance(variables, dict):
        raise BadFile(f"line {line}: variables must be an object")
    return Recipient(email.strip(), name or None, variables, line)


def idempotency_key(base: str, size: int, page: int) -> str:
    """The same command gets the same key per page, so a re-run within the API's idempotency window
    replays each page's reply instead of sending it again. The page size is part of it: a page the
    server refused for its size holds that refusal under its key, and the smaller pages cut after it
    are other requests."""
    return f"{base}-n{size}-p{page}"

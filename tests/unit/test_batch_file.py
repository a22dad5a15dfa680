"""Recipients files for `mailsage batch` (CSV and JSON lines), their pages and keys, and the
progress line: what is accepted, what is refused with which line, and what the user sees."""

from __future__ import annotations

import io

import pytest

from mailsage.batch_file import BadFile, Recipient, format_of, idempotency_key, parse
from mailsage.progress import ProgressLine, Snapshot


def test_csv_columns_become_name_and_variables() -> None:
    # Given a CSV with email, name and two more columns
    data = b"email,name,plan,city\nann@example.com,Ann,pro,Oslo\nbob@example.com,,free,\n"
    # When it is parsed
    parsed = parse(data, "csv")
    # Then each row is a recipient, the other columns its variables, and its line is kept
    assert parsed.recipients == [
        Recipient("ann@example.com", "Ann", {"plan": "pro", "city": "Oslo"}, 2),
        Recipient("bob@example.com", None, {"plan": "free", "city": ""}, 3),
    ]


def test_csv_with_a_spreadsheet_bom_and_quoted_fields() -> None:
    data = '\ufeffemail,greeting\r\nann@example.com,"Hello, Ann"\r\n\r\n'.encode()
    parsed = parse(data, "csv")
    assert parsed.recipients == [Recipient("ann@example.com", None, {"greeting": "Hello, Ann"}, 2)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"mail,name\nann@example.com,Ann\n", "line 1: the header has no 'email' column"),
        (b"email,name\nann@example.com,Ann\n,Bob\n", "line 3: no email"),
        (b"email,name\nann@example.com,Ann,extra\n", "line 2: 3 fields, the header has 2"),
        (b'email,name\n"ann@example.com,Ann\n', "not valid CSV"),
        (b"email\n", "no recipients"),
        (b"email,\xff\n", "not UTF-8"),
    ],
)
def test_a_bad_csv_names_the_line(data: bytes, message: str) -> None:
    with pytest.raises(BadFile, match=message):
        parse(data, "csv")


def test_json_lines_with_variables() -> None:
    data = b'{"email": "ann@example.com", "name": "Ann", "variables": {"n": 1}}\n\n{"email": "bob@example.com"}\n'
    parsed = parse(data, "jsonl")
    assert parsed.recipients == [
        Recipient("ann@example.com", "Ann", {"n": 1}, 1),
        Recipient("bob@example.com", None, {}, 3),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"name": "Ann"}', "line 2: no email"),
        (b'{"email": "ann@example.com", "vars": {}}', "line 2: unknown field 'vars'"),
        (b'{"email": "ann@example.com", "variables": [1]}', "line 2: variables must be an object"),
        (b"not json", "line 2: not valid JSON"),
        (b'["ann@example.com"]', "line 2: expected an object"),
    ],
)
def test_a_bad_json_line_names_its_line(line: bytes, message: str) -> None:
    with pytest.raises(BadFile, match=message):
        parse(b'{"email": "ok@example.com"}\n' + line + b"\n", "jsonl")


def test_the_format_comes_from_the_extension_or_the_flag() -> None:
    assert format_of("list.CSV", None) == "csv"
    assert format_of("list.jsonl", None) == "jsonl"
    assert format_of("-", "jsonl") == "jsonl"
    with pytest.raises(BadFile, match="--format"):
        format_of("-", None)
    with pytest.raises(BadFile, match="unknown extension"):
        format_of("list.txt", None)


def test_pages_cover_every_recipient_once_in_order() -> None:
    data = "email\n" + "".join(f"u{i}@example.com\n" for i in range(7))
    pages = parse(data.encode(), "csv").pages(3)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [r.email for page in pages for r in page] == [f"u{i}@example.com" for i in range(7)]


def test_the_same_file_and_options_get_the_same_keys_and_other_ones_other_keys() -> None:
    first = parse(b"email\nann@example.com\n", "csv")
    again = parse(b"email\nann@example.com\n", "csv")
    other = parse(b"email\nbob@example.com\n", "csv")
    options = {"subject": "Hi", "variables": {}}
    assert first.key_base(options) == again.key_base(dict(options)) != other.key_base(options)
    assert first.key_base(options) != first.key_base({**options, "subject": "Hello"})
    keys = {idempotency_key(first.key_base(options), size, page) for size in (10, 20) for page in (1, 2)}
    assert len(keys) == 4


def test_row_variables_win_over_shared_ones() -> None:
    recipient = Recipient("ann@example.com", "Ann", {"plan": "pro"})
    assert recipient.as_json({"plan": "free", "team": "x"}) == {
        "email": "ann@example.com",
        "name": "Ann",
        "variables": {"plan": "pro", "team": "x"},
    }


def snapshot(processed: int, states: tuple[str, ...] = ("running",)) -> Snapshot:
    return Snapshot(processed=processed, total=10, sent=processed, failed=0, states=states)


def test_a_terminal_gets_one_redrawn_line() -> None:
    # Given a progress line on a terminal
    stream = io.StringIO()
    line = ProgressLine(stream, tty=True)
    # When three states are shown, one of them twice, and it finishes
    for processed in (1, 1, 5, 10):
        line.show(snapshot(processed, ("completed",) if processed == 10 else ("running",)))
    line.finish()
    # Then each change is redrawn over the previous one, and one newline ends it
    out = stream.getvalue()
    assert out.count("\r") == 3 and out.count("\n") == 1
    assert "[" + "#" * 24 + "] 10/10 (100%)" in out and "1 completed" in out


def test_a_plain_stream_gets_at_most_one_line_a_second_and_the_last_one() -> None:
    # Given a progress line on a pipe, with a clock the test moves
    now = [0.0]
    stream = io.StringIO()
    line = ProgressLine(stream, tty=False, clock=lambda: now[0])
    # When four changes come within one second, then one after it, then the end
    for processed in (1, 2, 3):
        line.show(snapshot(processed))
        now[0] += 0.3
    now[0] = 1.5
    line.show(snapshot(4))
    line.show(snapshot(5))
    line.finish()
    # Then the first, the first after a second, and the last are printed, each on its own line
    lines = stream.getvalue().splitlines()
    assert [entry.split()[0] for entry in lines] == ["1/10", "4/10", "5/10"]
    assert "\r" not in stream.getvalue()


def test_a_plain_stream_repeats_nothing() -> None:
    now = [0.0]
    stream = io.StringIO()
    line = ProgressLine(stream, tty=False, clock=lambda: now[0])
    for _ in range(3):
        line.show(snapshot(2))
        now[0] += 5
    line.finish()
    assert len(stream.getvalue().splitlines()) == 1

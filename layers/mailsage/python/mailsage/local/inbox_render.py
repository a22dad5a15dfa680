"""The inbox's pages, rendered on the server from the templates in `inbox_assets/` (Jinja2 with
autoescaping on: every value from a message is text on the page, never markup)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from mailsage.local.inbox_data import MAX_SHOWN_BYTES, Detail, Row

TEMPLATES = Path(__file__).with_name("inbox_assets")


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["source"] = _source
    env.filters["truncate_bytes"] = _truncated
    return env


def list_page(rows: list[Row], total: int, query: str, token: str) -> str:
    template = _environment().get_template("list.html")
    return template.render(rows=rows, total=total, query=query, token=token)


def message_page(detail: Detail, token: str) -> str:
    template = _environment().get_template("message.html")
    return template.render(detail=detail, row=detail.row, token=token)


def _source(raw: bytes) -> str:
    shown = raw[:MAX_SHOWN_BYTES].decode("utf-8", "replace")
    return shown if len(raw) <= MAX_SHOWN_BYTES else shown + "\n… (cut here: download the .eml for all of it)"


def _truncated(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_BYTES else text[:MAX_SHOWN_BYTES] + "\n… (cut here)"

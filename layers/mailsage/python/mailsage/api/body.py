"""How the API reads a JSON request body: the standard parser, with bounds on what it may build.

Everything refused here is a `json.JSONDecodeError`, which Powertools' validation turns into a
`json_invalid` error, so the reply is the surface's ordinary 400 "not valid JSON" (after the gate:
a request without a key is still a 401), with the reason:
- nesting deeper than MAX_DEPTH: the C parser would raise RecursionError past ~1,000 levels, and
  anything that walks the value later (validation, storage, rendering) would too;
- an integer of more than 4,300 digits: the interpreter refuses to convert it (ValueError);
- a lone surrogate (`"\\ud800"`): valid JSON, but not text that can be stored or sent as UTF-8;
- a body above `max_bytes` (MAILSAGE_MAX_REQUEST_BYTES), before it is parsed: Powertools parses
  and validates the body before the gate runs, which then answers 413 (or 400 on a public path).
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


def parse_json(text: str, max_bytes: int | None = None) -> Any:
    if max_bytes is not None and _too_large(text, max_bytes):
        raise json.JSONDecodeError(f"the body is larger than {max_bytes} bytes", "", 0)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError(f"nested more than {MAX_DEPTH} levels deep", text, 0) from None
    except ValueError as exc:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        raise json.JSONDecodeError(f"a number is too long ({exc})", text, 0) from None
    _check(value, text)
    return value


def _too_large(text: str, max_bytes: int) -> bool:
    """Whether `text` is above `max_bytes` as UTF-8 (each character takes at least one byte)."""
    return len(text) > max_bytes or (not text.isascii() and len(text.encode()) > max_bytes)


def _check(value: Any, text: str) -> None:
    """Depth and strings, without recursion (the value may be ~1,000 levels deep)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            _text(item, text)
        elif isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise json.JSONDecodeError(f"nested more than {MAX_DEPTH} levels deep", text, 0)
            if isinstance(item, dict):
                for key, child in item.items():
                    _text(key, text)
                    pending.append((child, depth + 1))
            else:
                pending.extend((child, depth + 1) for child in item)


def _text(value: str, text: str) -> None:
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise json.JSONDecodeError("a string holds a lone surrogate (not UTF-8 text)", text, 0) from None

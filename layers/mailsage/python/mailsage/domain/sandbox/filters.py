"""Jinja's filters, wrapped: each checks what it would make before it runs and charges what it
made; and `lipsum`, bounded."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from jinja2.utils import generate_lorem_ipsum

from mailsage.domain.sandbox.budget import BYTES_PER_STEP, MAX_LIPSUM_WORDS, LimitExceeded, charge
from mailsage.domain.sandbox.checks import (
    CONTAINERS,
    SEQUENCES,
    Checks,
    is_int,
    join_size,
    percent_size,
    replace_size,
)

# Filters that return a number or one of the values they were given: nothing to bound (their work is
# linear in an input that is itself bounded), so they run unwrapped.
UNBOUNDED_OK = frozenset(
    [
        "abs",
        "attr",
        "count",
        "d",
        "default",
        "first",
        "float",
        "int",
        "last",
        "length",
        "max",
        "min",
        "random",
        "round",
    ]
)

# Filters that write their input as text: `str()` of a list of one big string repeated is huge.
_STRINGIFYING = frozenset(
    [
        "capitalize",
        "center",
        "e",
        "escape",
        "forceescape",
        "indent",
        "lower",
        "upper",
        "title",
        "trim",
        "striptags",
        "string",
        "truncate",
        "urlize",
        "wordcount",
        "wordwrap",
        "replace",
        "pprint",
        "tojson",
        "urlencode",
        "safe",
        "xmlattr",
    ]
)


def bounded_filter(name: str, func: Callable[..., Any], checks: Checks) -> Callable[..., Any]:
    check = _FILTER_CHECKS.get(name)
    stringifies = name in _STRINGIFYING
    # @pass_eval_context / @pass_environment / @pass_context filters take that first, then the value
    skip = 0 if getattr(func, "jinja_pass_arg", None) is None else 1

    @wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        value = args[skip] if len(args) > skip else None
        if stringifies and value.__class__ is not str and isinstance(value, CONTAINERS):
            checks.text(f"the {name} filter's input", value)
        if check is not None:
            args = check(checks, args, skip, kwargs)
        result = func(*args, **kwargs)
        # Small in, small out (the common case) is charged by the loop or macro it runs in.
        made = len(result) if isinstance(result, SEQUENCES) else 0
        read = len(value) if isinstance(value, SEQUENCES) else 0
        if made > 64 or read > 256:
            checks.length(f"the {name} filter's result", made)
            charge(1 + read // BYTES_PER_STEP, made if isinstance(result, (str, bytes)) else 8 * made)
        return result

    return bounded


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _check_center(c: Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    width = _arg(args, kwargs, skip + 1, "width", 80)
    if is_int(width):
        c.length("center", width)
    return args


def _check_indent(c: Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    text, width = args[skip], _arg(args, kwargs, skip + 1, "width", 4)
    indent = len(width) if isinstance(width, str) else width if is_int(width) else 0
    lines = str(text).count("\n") + 1
    c.length("indent", len(str(text)) + lines * max(indent, 0))
    return args


def _check_wordwrap(c: Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    text = str(args[skip])
    width = _arg(args, kwargs, skip + 1, "width", 79)
    wrap = _arg(args, kwargs, skip + 3, "wrapstring", None) or "\n"
    lines = len(text) // max(width if is_int(width) else 1, 1) + text.count("\n") + 1
    c.length("wordwrap", len(text) + lines * len(str(wrap)))
    return args


def _check_format(c: Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    fmt = str(args[skip])
    c.length("the format filter's result", percent_size(fmt, kwargs or tuple(args[skip + 1 :]), c.max_chars))
    return args


def _check_replace(c: Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    if len(args) >= skip + 3:
        count = _arg(args, kwargs, skip + 3, "count", None)
        c.length("replace", replace_size(str(args[skip]), str(args[skip + 1]), str(args[skip + 2]), count))
    return args


def _check_join(c: Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    items = args[skip]
    if not isinstance(items, (list, tuple, str)):
        items = list(items)  # an iterator: made a list once, to be measured
        args = (*args[:skip], items, *args[skip + 1 :])
    if len(items) > 64:
        charge(len(items) // 16)
    separator = _arg(args, kwargs, skip + 1, "d", "")
    c.length("join", join_size(items, str(separator), c.max_chars))
    return args


def _check_count(name: str, param: str, index: int) -> Callable[..., tuple[Any, ...]]:
    def check(c: Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
        count = _arg(args, kwargs, skip + index, param, 0)
        if is_int(count):
            c.length(f"{name}'s {param}", count)
        return args

    return check


def _check_sum(c: Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    start = _arg(args, kwargs, skip + 2, "start", 0)
    if not isinstance(start, (int, float)):  # summing lists copies the total at every item
        raise LimitExceeded("value_size", "sum's start must be a number")
    return args


def _check_tojson(c: Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    indent = _arg(args, kwargs, skip + 1, "indent", None)
    if is_int(indent) and indent > 16:
        raise LimitExceeded("value_size", "tojson's indent is at most 16")
    return args


_FILTER_CHECKS: dict[str, Callable[..., tuple[Any, ...]]] = {
    "center": _check_center,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "format": _check_format,
    "replace": _check_replace,
    "join": _check_join,
    "batch": _check_count("batch", "linecount", 1),
    "slice": _check_count("slice", "slices", 1),
    "truncate": _check_count("truncate", "length", 1),
    "sum": _check_sum,
    "tojson": _check_tojson,
}


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    if not all(is_int(v) for v in (n, min, max)) or n * max > MAX_LIPSUM_WORDS:
        raise LimitExceeded("value_size", f"lipsum makes at most {MAX_LIPSUM_WORDS} words (n x max)")
    charge(n * max // 16)
    return generate_lorem_ipsum(n, html, min, max)

"""Pre-checks of the operations that can make a value much bigger than their inputs (operators,
str/list/int methods, `%` and `str.format`), done before the work is."""

from __future__ import annotations

import re
from typing import Any

from jinja2.sandbox import SandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter

from mailsage.domain.sandbox.budget import MAX_INT_BITS, LimitExceeded, produced, size_of, text_size


def too_long(what: str, size: int, limit: int) -> LimitExceeded:
    return LimitExceeded("value_size", f"{what} would be {size} characters or items; the limit is {limit}")


class Checks:
    """Pre-checks of operations that can make a value much bigger than their inputs."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars

    def length(self, what: str, size: int) -> None:
        if size > self.max_chars:
            raise too_long(what, size, self.max_chars)

    def bits(self, what: str, bits: int) -> None:
        if bits > MAX_INT_BITS:
            raise LimitExceeded(
                "int_bits", f"{what} would be a {bits}-bit integer; the limit is {MAX_INT_BITS} bits"
            )

    def binop(self, op: str, left: Any, right: Any) -> None:
        if op == "**":
            if is_int(left) and is_int(right) and right > 0 and abs(left) > 1:
                self.bits("a power", (abs(left).bit_length() - 1) * right + 1)
        elif op == "*":
            if is_int(left) and is_int(right):
                self.bits("a product", left.bit_length() + right.bit_length())
            elif is_int(right) and is_sequence(left):
                self.length("a repeated sequence", len(left) * max(right, 0))
            elif is_int(left) and is_sequence(right):
                self.length("a repeated sequence", len(right) * max(left, 0))
        elif op == "+":
            if is_sequence(left) and is_sequence(right):
                self.length("a concatenation", len(left) + len(right))
        elif op == "%" and isinstance(left, str):
            self.length("a %-formatted string", percent_size(left, right, self.max_chars))

    def text(self, what: str, value: Any) -> None:
        """`str(value)` would fit."""
        if not isinstance(value, str):
            self.length(what, text_size(value, self.max_chars))

    def concat(self, parts: tuple[Any, ...]) -> None:
        self.length("a ~ concatenation", sum(text_size(p, self.max_chars) for p in parts))

    def format_spec(self, spec: str) -> None:
        for number in _SPEC_NUMBERS.findall(spec):
            if len(number) > 9 or int(number) > self.max_chars:
                raise too_long("a format width or precision", int(number[:12]), self.max_chars)

    def method(self, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """str, bytes, list and int methods that multiply their input; the args to call with."""
        owner = getattr(obj, "__self__", None)
        name = getattr(obj, "__name__", "")
        if isinstance(owner, (str, bytes)):
            if name in ("center", "ljust", "rjust", "zfill") and args and is_int(args[0]):
                self.length(f"{name}()", args[0])
            elif name == "expandtabs":
                tab = args[0] if args else kwargs.get("tabsize", 8)
                tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
                if is_int(tab):
                    self.length("expandtabs()", len(owner) + tabs * tab)
            elif name == "replace" and len(args) >= 2:
                self.length(
                    "replace()", replace_size(owner, args[0], args[1], args[2] if len(args) > 2 else -1)
                )
            elif name == "join" and args:
                if not isinstance(args[0], (list, tuple, str)):
                    args = (list(args[0]), *args[1:])  # an iterator: made a list once, to be measured
                self.length("join()", join_size(args[0], owner, self.max_chars))
            elif name in ("translate", "maketrans"):
                raise LimitExceeded("value_size", f"{name}() is not available in templates")
        elif isinstance(owner, list) and name == "extend" and args:
            self.length("extend()", len(owner) + size_of(args[0]))
        elif isinstance(owner, int) and name == "to_bytes":
            length = args[0] if args else kwargs.get("length", 1)
            if is_int(length):
                self.length("to_bytes()", length)
        return args


CONTAINERS = (list, tuple, dict, set, frozenset)
SEQUENCES = (str, bytes, list, tuple)


def is_int(value: Any) -> bool:
    return isinstance(value, int)  # bool included: True * 'x' is 'x'


def is_sequence(value: Any) -> bool:
    return isinstance(value, (str, bytes, list, tuple))


def replace_size(text: Any, old: Any, new: Any, count: Any) -> int:
    if not isinstance(old, (str, bytes)) or not isinstance(new, (str, bytes)):
        return len(text)
    hits = len(text) + 1 if not old else text.count(old)
    if is_int(count) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * len(new)


def join_size(items: Any, separator: Any, limit: int) -> int:
    total = len(separator) * max(len(items) - 1, 0)
    for item in items:
        total += len(item) if isinstance(item, str) else text_size(item, limit)
        if total > limit:
            break
    return total


# `%` conversions: %[(key)][flags][width][.precision][length]type
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)
_SPEC_NUMBERS = re.compile(r"\d+")
_BIG_WIDTH = re.compile(r"\d{4}|\*")  # a width or precision that may matter


def percent_size(fmt: str, args: Any, limit: int) -> int:
    """An upper bound of the length of `fmt % args`."""
    values = list(args.values()) if isinstance(args, dict) else args if isinstance(args, tuple) else [args]
    # Any conversion may write the largest value (`%(a)s` can name one value many times), escaped.
    largest = 0
    for v in values:
        if isinstance(v, str):
            largest = max(largest, len(v))
        elif isinstance(v, (int, *CONTAINERS)):
            largest = max(largest, text_size(v, limit))
    largest = largest * 6 + 32
    size = len(fmt) + largest * fmt.count("%")
    if not _BIG_WIDTH.search(fmt):
        return size
    star = max((v for v in values if is_int(v)), default=0)
    for width, precision, _ in _PERCENT.findall(fmt):
        for number in (width, precision):
            if number == "*":
                size += star
            elif number:
                size += int(number) if len(number) <= 12 else 10**12
    return size


class BoundedFormatter(SandboxedFormatter):
    """str.format with every field's width and precision, and the whole result, bounded."""

    def __init__(self, env: SandboxedEnvironment, checks: Checks, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self._checks = checks
        self._written = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        self._checks.format_spec(format_spec)
        self._checks.text("a str.format() field", value)
        result = super().format_field(value, format_spec)
        self._written += len(result)
        self._checks.length("str.format()", self._written)
        produced(result)
        return result


class BoundedEscapeFormatter(BoundedFormatter, SandboxedEscapeFormatter):
    pass

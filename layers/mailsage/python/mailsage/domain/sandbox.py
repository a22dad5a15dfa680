"""A Jinja2 sandbox that bounds work, not just attribute access.

Jinja's `SandboxedEnvironment` stops escapes, but `{{ 9**15000000 }}`, `'a' * 10**9`,
`'{:>100000000}'.format(1)` or nested loops still run: big-integer math holds the GIL, so one
template could freeze every other request of the process. Here every render has a budget:

- values: no operator, method, filter or format may build a string or sequence longer than the
  part's output limit, nor an integer wider than MAX_INT_BITS; checked *before* the work is done;
- steps: loop iterations, calls, operators and filters (filters weigh by the size of their input)
  count against MAX_STEPS; CPU time against MAX_CPU_SECONDS (a backstop for what steps miss);
- volume: everything a render makes (each `{{ }}` written, loop bodies, every string or list an
  operator, method or filter returns, buffers and macros included) counts against
  MAX_VOLUME_FACTOR x the output limit, so memory stays bounded however values are combined;
  a part's output counts against the output limit.

Compile-time constant folding goes through the same checks (an intercepted operator is never
folded; a refused constant expression is a compile error). Exceeding a limit raises `LimitExceeded`.
"""

from __future__ import annotations

import re
import time
import types
from collections.abc import Callable
from contextvars import ContextVar
from functools import wraps
from string import Formatter
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import SandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum
from markupsafe import Markup

MAX_INT_BITS = 4096  # ~1,233 decimal digits: any real amount, id or date fits many times over
MAX_STEPS = 100_000  # per render: loop iterations (by body size), calls, operators, outputs, big inputs
MAX_CPU_SECONDS = 0.2  # thread CPU time of one render, checked every CPU_CHECK_EVERY steps
MACRO_CALL_STEPS = 8  # a macro call costs about as much as 8 loop iterations (its body is extra)
RECURSIVE_ITEM_STEPS = 4  # an item of a recursive loop's `loop(children)`
MAX_VOLUME_FACTOR = 8  # everything a render makes, x the output limit (a list item counts 8)
MAX_LIPSUM_WORDS = 10_000
CPU_CHECK_EVERY = 256
_BYTES_PER_STEP = 256  # a filter or method call on N items or characters costs N / 256 steps


class LimitExceeded(Exception):
    """A template asked for more than a render may use; `limit` names which limit."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class Budget:
    """What one render may still use. Renders run in threads: each has its own (a ContextVar)."""

    __slots__ = ("max_volume", "steps", "volume", "next_check", "_cpu_deadline")

    def __init__(self, max_chars: int) -> None:
        self.max_volume = max_chars * MAX_VOLUME_FACTOR
        self.steps = 0
        self.volume = 0
        self.next_check = CPU_CHECK_EVERY
        # The CPU clock is read at the first check, not here: it is a system call, and most renders
        # finish long before their first check.
        self._cpu_deadline = 0.0

    def charge(self, steps: int, volume: int = 0) -> None:
        # The hot paths (loops, `{{ }}`) inline these two lines and call `check` themselves.
        self.steps += steps
        self.volume += volume
        if self.steps >= self.next_check or self.volume > self.max_volume:
            self.check()

    def check(self) -> None:
        if self.volume > self.max_volume:
            raise LimitExceeded(
                "volume",
                f"the template makes more than {self.max_volume} characters in all"
                " (values, loops, macros and blocks included)",
            )
        if self.steps < self.next_check:
            return
        if self.steps > MAX_STEPS:
            raise LimitExceeded("steps", f"the template takes more than {MAX_STEPS} steps")
        self.next_check = self.steps + CPU_CHECK_EVERY
        now = time.thread_time()
        if not self._cpu_deadline:
            self._cpu_deadline = now + MAX_CPU_SECONDS
        elif now > self._cpu_deadline:
            raise LimitExceeded("cpu_time", f"the template takes more than {MAX_CPU_SECONDS} s of CPU")


_budget: ContextVar[Budget | None] = ContextVar("mailsage_template_budget", default=None)


def start_budget(max_chars: int) -> Any:
    """Give this thread's next render a fresh budget; pass the result to `end_budget`."""
    return _budget.set(Budget(max_chars))


def end_budget(token: Any) -> None:
    _budget.reset(token)


def _charge(steps: int, volume: int = 0) -> None:
    budget = _budget.get()
    if budget is not None:  # None: compile-time folding, where only the value checks apply
        budget.charge(steps, volume)


def _size(value: Any) -> int:
    """Characters or items of a sized value, the bytes of an int; 0 for anything else."""
    if isinstance(value, int):
        return value.bit_length() // 8
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset, range)):
        return len(value)
    return 0


def _text_size(value: Any, limit: int) -> int:
    """About how long `str(value)` is, counted only up to just past `limit` (a list of one big string
    repeated a thousand times is a small list and a huge text)."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, (list, tuple, dict, set, frozenset)):
        return value.bit_length() // 3 + 2 if isinstance(value, int) else 32
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 4
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2
            stack.extend(item)
        elif isinstance(item, dict):
            total += 2
            stack.extend(item.keys())
            stack.extend(item.values())
        else:
            total += _text_size(item, limit)
    _charge(total // _BYTES_PER_STEP)
    return total


def _produced(value: Any) -> None:
    """Count a value the render made against its volume."""
    if isinstance(value, (str, bytes)):
        _charge(1, len(value))
    elif isinstance(value, (list, tuple, dict, set, frozenset)):
        _charge(1, 8 * len(value))


def _too_long(what: str, size: int, limit: int) -> LimitExceeded:
    return LimitExceeded("value_size", f"{what} would be {size} characters or items; the limit is {limit}")


class _Checks:
    """Pre-checks of operations that can make a value much bigger than their inputs."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars

    def length(self, what: str, size: int) -> None:
        if size > self.max_chars:
            raise _too_long(what, size, self.max_chars)

    def bits(self, what: str, bits: int) -> None:
        if bits > MAX_INT_BITS:
            raise LimitExceeded(
                "int_bits", f"{what} would be a {bits}-bit integer; the limit is {MAX_INT_BITS} bits"
            )

    def binop(self, op: str, left: Any, right: Any) -> None:
        if op == "**":
            if _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
                self.bits("a power", (abs(left).bit_length() - 1) * right + 1)
        elif op == "*":
            if _is_int(left) and _is_int(right):
                self.bits("a product", left.bit_length() + right.bit_length())
            elif _is_int(right) and _sequence(left):
                self.length("a repeated sequence", len(left) * max(right, 0))
            elif _is_int(left) and _sequence(right):
                self.length("a repeated sequence", len(right) * max(left, 0))
        elif op == "+":
            if _sequence(left) and _sequence(right):
                self.length("a concatenation", len(left) + len(right))
        elif op == "%" and isinstance(left, str):
            self.length("a %-formatted string", _percent_size(left, right, self.max_chars))

    def text(self, what: str, value: Any) -> None:
        """`str(value)` would fit."""
        if not isinstance(value, str):
            self.length(what, _text_size(value, self.max_chars))

    def concat(self, parts: tuple[Any, ...]) -> None:
        self.length("a ~ concatenation", sum(_text_size(p, self.max_chars) for p in parts))

    def format_spec(self, spec: str) -> None:
        for number in _SPEC_NUMBERS.findall(spec):
            if len(number) > 9 or int(number) > self.max_chars:
                raise _too_long("a format width or precision", int(number[:12]), self.max_chars)

    def method(self, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """str, bytes, list and int methods that multiply their input; the args to call with."""
        owner = getattr(obj, "__self__", None)
        name = getattr(obj, "__name__", "")
        if isinstance(owner, (str, bytes)):
            if name in ("center", "ljust", "rjust", "zfill") and args and _is_int(args[0]):
                self.length(f"{name}()", args[0])
            elif name == "expandtabs":
                tab = args[0] if args else kwargs.get("tabsize", 8)
                tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
                if _is_int(tab):
                    self.length("expandtabs()", len(owner) + tabs * tab)
            elif name == "replace" and len(args) >= 2:
                self.length(
                    "replace()", _replace_size(owner, args[0], args[1], args[2] if len(args) > 2 else -1)
                )
            elif name == "join" and args:
                if not isinstance(args[0], (list, tuple, str)):
                    args = (list(args[0]), *args[1:])  # an iterator: made a list once, to be measured
                self.length("join()", _join_size(args[0], owner, self.max_chars))
            elif name in ("translate", "maketrans"):
                raise LimitExceeded("value_size", f"{name}() is not available in templates")
        elif isinstance(owner, list) and name == "extend" and args:
            self.length("extend()", len(owner) + _size(args[0]))
        elif isinstance(owner, int) and name == "to_bytes":
            length = args[0] if args else kwargs.get("length", 1)
            if _is_int(length):
                self.length("to_bytes()", length)
        return args


_CONTAINERS = (list, tuple, dict, set, frozenset)
_SEQUENCES = (str, bytes, list, tuple)


def _is_int(value: Any) -> bool:
    return isinstance(value, int)  # bool included: True * 'x' is 'x'


def _sequence(value: Any) -> bool:
    return isinstance(value, (str, bytes, list, tuple))


def _replace_size(text: Any, old: Any, new: Any, count: Any) -> int:
    if not isinstance(old, (str, bytes)) or not isinstance(new, (str, bytes)):
        return len(text)
    hits = len(text) + 1 if not old else text.count(old)
    if _is_int(count) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * len(new)


def _join_size(items: Any, separator: Any, limit: int) -> int:
    total = len(separator) * max(len(items) - 1, 0)
    for item in items:
        total += len(item) if isinstance(item, str) else _text_size(item, limit)
        if total > limit:
            break
    return total


# `%` conversions: %[(key)][flags][width][.precision][length]type
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)
_SPEC_NUMBERS = re.compile(r"\d+")
_BIG_WIDTH = re.compile(r"\d{4}|\*")  # a width or precision that may matter


def _percent_size(fmt: str, args: Any, limit: int) -> int:
    """An upper bound of the length of `fmt % args`."""
    values = list(args.values()) if isinstance(args, dict) else args if isinstance(args, tuple) else [args]
    # Any conversion may write the largest value (`%(a)s` can name one value many times), escaped.
    largest = 0
    for v in values:
        if isinstance(v, str):
            largest = max(largest, len(v))
        elif isinstance(v, (int, *_CONTAINERS)):
            largest = max(largest, _text_size(v, limit))
    largest = largest * 6 + 32
    size = len(fmt) + largest * fmt.count("%")
    if not _BIG_WIDTH.search(fmt):
        return size
    star = max((v for v in values if _is_int(v)), default=0)
    for width, precision, _ in _PERCENT.findall(fmt):
        for number in (width, precision):
            if number == "*":
                size += star
            elif number:
                size += int(number) if len(number) <= 12 else 10**12
    return size


class _BoundedFormatter(SandboxedFormatter):
    """str.format with every field's width and precision, and the whole result, bounded."""

    def __init__(self, env: SandboxedEnvironment, checks: _Checks, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self._checks = checks
        self._written = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        self._checks.format_spec(format_spec)
        self._checks.text("a str.format() field", value)
        result = super().format_field(value, format_spec)
        self._written += len(result)
        self._checks.length("str.format()", self._written)
        _produced(result)
        return result


class _BoundedEscapeFormatter(_BoundedFormatter, SandboxedEscapeFormatter):
    pass


# Filters that return a number or one of the values they were given: nothing to bound (their work is
# linear in an input that is itself bounded), so they run unwrapped.
_UNBOUNDED_OK = frozenset(
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


def _bounded_filter(name: str, func: Callable[..., Any], checks: _Checks) -> Callable[..., Any]:
    check = _FILTER_CHECKS.get(name)
    stringifies = name in _STRINGIFYING
    # @pass_eval_context / @pass_environment / @pass_context filters take that first, then the value
    skip = 0 if getattr(func, "jinja_pass_arg", None) is None else 1

    @wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        value = args[skip] if len(args) > skip else None
        if stringifies and value.__class__ is not str and isinstance(value, _CONTAINERS):
            checks.text(f"the {name} filter's input", value)
        if check is not None:
            args = check(checks, args, skip, kwargs)
        result = func(*args, **kwargs)
        # Small in, small out (the common case) is charged by the loop or macro it runs in.
        made = len(result) if isinstance(result, _SEQUENCES) else 0
        read = len(value) if isinstance(value, _SEQUENCES) else 0
        if made > 64 or read > 256:
            checks.length(f"the {name} filter's result", made)
            _charge(1 + read // _BYTES_PER_STEP, made if isinstance(result, (str, bytes)) else 8 * made)
        return result

    return bounded


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _check_center(c: _Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    width = _arg(args, kwargs, skip + 1, "width", 80)
    if _is_int(width):
        c.length("center", width)
    return args


def _check_indent(c: _Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    text, width = args[skip], _arg(args, kwargs, skip + 1, "width", 4)
    indent = len(width) if isinstance(width, str) else width if _is_int(width) else 0
    lines = str(text).count("\n") + 1
    c.length("indent", len(str(text)) + lines * max(indent, 0))
    return args


def _check_wordwrap(c: _Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    text = str(args[skip])
    width = _arg(args, kwargs, skip + 1, "width", 79)
    wrap = _arg(args, kwargs, skip + 3, "wrapstring", None) or "\n"
    lines = len(text) // max(width if _is_int(width) else 1, 1) + text.count("\n") + 1
    c.length("wordwrap", len(text) + lines * len(str(wrap)))
    return args


def _check_format(c: _Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    fmt = str(args[skip])
    c.length("the format filter's result", _percent_size(fmt, kwargs or tuple(args[skip + 1 :]), c.max_chars))
    return args


def _check_replace(c: _Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    if len(args) >= skip + 3:
        count = _arg(args, kwargs, skip + 3, "count", None)
        c.length("replace", _replace_size(str(args[skip]), str(args[skip + 1]), str(args[skip + 2]), count))
    return args


def _check_join(c: _Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    items = args[skip]
    if not isinstance(items, (list, tuple, str)):
        items = list(items)  # an iterator: made a list once, to be measured
        args = (*args[:skip], items, *args[skip + 1 :])
    if len(items) > 64:
        _charge(len(items) // 16)
    separator = _arg(args, kwargs, skip + 1, "d", "")
    c.length("join", _join_size(items, str(separator), c.max_chars))
    return args


def _check_count(name: str, param: str, index: int) -> Callable[..., tuple[Any, ...]]:
    def check(c: _Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
        count = _arg(args, kwargs, skip + index, param, 0)
        if _is_int(count):
            c.length(f"{name}'s {param}", count)
        return args

    return check


def _check_sum(c: _Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    start = _arg(args, kwargs, skip + 2, "start", 0)
    if not isinstance(start, (int, float)):  # summing lists copies the total at every item
        raise LimitExceeded("value_size", "sum's start must be a number")
    return args


def _check_tojson(c: _Checks, args: tuple[Any, ...], skip: int, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    indent = _arg(args, kwargs, skip + 1, "indent", None)
    if _is_int(indent) and indent > 16:
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


def _counted_loop(iterable: Any, steps: int, text: int) -> Any:
    """A loop's iterable, charging each iteration with its body's static weight: `steps` for its
    code, `text` for the constant text it writes."""
    budget = _budget.get()
    if budget is None:
        yield from iterable
        return
    for item in iterable:
        budget.steps += steps
        budget.volume += text
        if budget.steps >= budget.next_check or budget.volume > budget.max_volume:
            budget.check()
        yield item


def _charge_body(steps: int, text: int) -> str:
    """Called first in a macro's body: the body's static weight, for every call."""
    _charge(steps, text)
    return ""


def _weight(body: list[nodes.Node]) -> tuple[int, int]:
    """(steps, text) of running `body` once, nested loops and macros aside (they charge their own):
    a step per 4 expression nodes (an attribute lookup, a test, a filter...), and its constant text."""
    count = text = 0
    for top in body:
        for node in (top, *top.find_all(nodes.Node)):
            count += 1
            if isinstance(node, nodes.TemplateData):
                text += len(node.data)
    return 1 + count // 4 + text // _BYTES_PER_STEP, text


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with loops counted, `~` checked and constant folding checked."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        steps, text = _weight(node.body)
        node.iter = _env_call(
            "counted_loop", node.iter, nodes.Const(steps), nodes.Const(text), lineno=node.lineno
        )
        super().visit_For(node, frame)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        # The calls this generator adds are direct calls to the environment's own functions, not
        # template code to sandbox (templates cannot name environment attributes).
        if isinstance(node.node, nodes.EnvironmentAttribute) and node.node.name in _OWN_CALLS:
            self.write(f"environment.{node.node.name}(")
            for arg in node.args:
                self.visit(arg, frame)
                self.write(", ")
            self.write(")")
            return
        super().visit_Call(node, frame, forward_caller=forward_caller)

    def visit_Macro(self, node: nodes.Macro, frame: Frame) -> None:
        self._charge_first(node)
        super().visit_Macro(node, frame)

    def visit_CallBlock(self, node: nodes.CallBlock, frame: Frame) -> None:
        self._charge_first(node)  # the caller() body
        super().visit_CallBlock(node, frame)

    def _charge_first(self, node: nodes.Macro | nodes.CallBlock) -> None:
        steps, text = _weight(node.body)
        charge = _env_call("charge_body", nodes.Const(steps), nodes.Const(text), lineno=node.lineno)
        node.body = [nodes.Output([charge], lineno=node.lineno), *node.body]

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # Jinja's own choice of join function, called once the parts are measured.
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.bounded_concat({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_Filter(self, node: nodes.Filter, frame: Frame) -> None:
        # The optimizer folds constant filters, and drops a fold that raised: a refused constant
        # (`'a'|center(10**9)`) is reported now, at compile time, rather than at every render.
        _refused_fold(node, frame)
        super().visit_Filter(node, frame)

    def _binop_checked(self, op: str, node: nodes.BinExpr, frame: Frame) -> None:
        try:
            left, right = node.left.as_const(frame.eval_ctx), node.right.as_const(frame.eval_ctx)
        except nodes.Impossible:
            return
        except Exception:  # noqa: BLE001 - folding an operand failed; the render will say why
            return
        self.environment.checks.binop(op, left, right)  # type: ignore[attr-defined]

    def visit_Add(self, node: nodes.BinExpr, frame: Frame) -> None:
        self._binop_checked("+", node, frame)
        super().visit_Add(node, frame)

    def visit_Mul(self, node: nodes.BinExpr, frame: Frame) -> None:
        self._binop_checked("*", node, frame)
        super().visit_Mul(node, frame)

    def visit_Pow(self, node: nodes.BinExpr, frame: Frame) -> None:
        self._binop_checked("**", node, frame)
        super().visit_Pow(node, frame)

    def visit_Mod(self, node: nodes.BinExpr, frame: Frame) -> None:
        self._binop_checked("%", node, frame)
        super().visit_Mod(node, frame)


_OWN_CALLS = frozenset({"counted_loop", "charge_body"})


def _env_call(name: str, *args: nodes.Node, lineno: int) -> nodes.Call:
    """`environment.<name>(*args)` as a template expression node."""
    return nodes.Call(nodes.EnvironmentAttribute(name), list(args), [], None, None, lineno=lineno)


def _refused_fold(node: nodes.Filter, frame: Frame) -> None:
    try:
        node.as_const(frame.eval_ctx)
    except nodes.Impossible as exc:
        if isinstance(exc.__cause__, LimitExceeded):
            raise exc.__cause__ from None
    except Exception:  # noqa: BLE001 - not foldable for another reason: left to the render
        pass


class BoundedEnvironment(SandboxedEnvironment):
    """The sandbox with budgets; `max_chars` bounds any value and a part's output."""

    code_generator_class = _BoundedCodeGenerator
    # Every arithmetic operator goes through call_binop, and none is folded at compile time.
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, max_chars: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_chars = max_chars
        self.checks = _Checks(max_chars)
        self.filters = {
            name: f if name in _UNBOUNDED_OK else _bounded_filter(name, f, self.checks)
            for name, f in self.filters.items()
        }
        self.globals["lipsum"] = _bounded_lipsum
        self.finalize = self._finalize_output
        self.counted_loop = _counted_loop
        self.charge_body = _charge_body

    def render(self, template: Any, variables: dict[str, Any]) -> str:
        """`template.render(variables)` with a fresh budget; a part over the output limit is refused."""
        token = _budget.set(Budget(self.max_chars))
        try:
            text: str = self.concat(template.root_render_func(template.new_context(dict(variables))))  # type: ignore[attr-defined]
        finally:
            _budget.reset(token)
        # Checked once at the end: the volume limit has bounded what a render can write on the way.
        if len(text) * 4 > self.max_chars and len(text.encode()) > self.max_chars:
            raise LimitExceeded("output_size", f"the rendered part is over {self.max_chars} bytes")
        return text

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.checks.binop(operator, left, right)
        _charge(1)
        result = super().call_binop(context, operator, left, right)
        _produced(result)
        return result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        steps = MACRO_CALL_STEPS if isinstance(__obj, Macro) else 1
        _charge(steps + sum(_size(a) for a in args) // _BYTES_PER_STEP)
        if isinstance(__obj, (types.BuiltinMethodType, types.MethodType)):
            args = __self.checks.method(__obj, args, kwargs)
        elif isinstance(__obj, LoopContext) and args:
            # `loop(children)` of a recursive loop iterates outside the counted iterable: count it too
            # (the body's static weight is not known here: a fixed weight per item).
            args = (_counted_loop(args[0], RECURSIVE_ITEM_STEPS, 0), *args[1:])
        result = SandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs)
        if _sequence(result):
            name = getattr(__obj, "name", None) or getattr(
                __obj, "__name__", "a call"
            )  # a macro's, a method's
            __self.checks.length(f"the result of {name}()", len(result))
        _produced(result)
        return result

    def bounded_concat(self, join: Callable[[Any], str], parts: tuple[Any, ...]) -> str:
        self.checks.concat(parts)
        result = join(parts)
        _produced(result)
        return result

    def _finalize_output(self, value: Any) -> Any:
        # What `{{ }}` writes, wherever it goes (the output, a macro's or a block's buffer).
        budget = _budget.get()
        if budget is not None:
            if isinstance(value, str):
                budget.volume += len(value)
            elif isinstance(value, _CONTAINERS):
                self.checks.text("a written value", value)
            budget.steps += 1
            if budget.steps >= budget.next_check or budget.volume > budget.max_volume:
                budget.check()
        return value

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # Jinja's own wrapper, with a formatter that bounds widths and the result.
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        f_self: Any = value.__self__
        if not isinstance(f_self, str):
            return None
        str_type: type[str] = type(f_self)
        is_format_map = value.__name__ == "format_map"
        formatter: Formatter
        if isinstance(f_self, Markup):
            formatter = _BoundedEscapeFormatter(self, self.checks, escape=f_self.escape)
        else:
            formatter = _BoundedFormatter(self, self.checks)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()
            return str_type(formatter.vformat(f_self, args, kwargs))

        return wrapper


def _bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    if not all(_is_int(v) for v in (n, min, max)) or n * max > MAX_LIPSUM_WORDS:
        raise LimitExceeded("value_size", f"lipsum makes at most {MAX_LIPSUM_WORDS} words (n x max)")
    _charge(n * max // 16)
    return generate_lorem_ipsum(n, html, min, max)

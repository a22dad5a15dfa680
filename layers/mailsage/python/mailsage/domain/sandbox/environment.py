"""`BoundedEnvironment`: Jinja's `SandboxedEnvironment` with the budget applied to every render,
operator, call, `{{ }}` output and `str.format`."""

from __future__ import annotations

import types
from collections.abc import Callable
from string import Formatter
from typing import Any

from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from mailsage.domain.sandbox.budget import (
    BYTES_PER_STEP,
    MACRO_CALL_STEPS,
    RECURSIVE_ITEM_STEPS,
    Budget,
    LimitExceeded,
    charge,
    charge_body,
    counted_loop,
    current_budget,
    produced,
    size_of,
)
from mailsage.domain.sandbox.checks import (
    CONTAINERS,
    BoundedEscapeFormatter,
    BoundedFormatter,
    Checks,
    is_sequence,
)
from mailsage.domain.sandbox.codegen import BoundedCodeGenerator
from mailsage.domain.sandbox.filters import UNBOUNDED_OK, bounded_filter, bounded_lipsum


class BoundedEnvironment(SandboxedEnvironment):
    """The sandbox with budgets; `max_chars` bounds any value and a part's output."""

    code_generator_class = BoundedCodeGenerator
    # Every arithmetic operator goes through call_binop, and none is folded at compile time.
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, max_chars: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_chars = max_chars
        self.checks = Checks(max_chars)
        self.filters = {
            name: f if name in UNBOUNDED_OK else bounded_filter(name, f, self.checks)
            for name, f in self.filters.items()
        }
        self.globals["lipsum"] = bounded_lipsum
        self.finalize = self._finalize_output
        self.counted_loop = counted_loop
        self.charge_body = charge_body

    def render(self, template: Any, variables: dict[str, Any]) -> str:
        """`template.render(variables)` with a fresh budget; a part over the output limit is refused."""
        token = current_budget.set(Budget(self.max_chars))
        try:
            text: str = self.concat(template.root_render_func(template.new_context(dict(variables))))  # type: ignore[attr-defined]
        finally:
            current_budget.reset(token)
        # Checked once at the end: the volume limit has bounded what a render can write on the way.
        if len(text) * 4 > self.max_chars and len(text.encode()) > self.max_chars:
            raise LimitExceeded("output_size", f"the rendered part is over {self.max_chars} bytes")
        return text

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.checks.binop(operator, left, right)
        charge(1)
        result = super().call_binop(context, operator, left, right)
        produced(result)
        return result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        steps = MACRO_CALL_STEPS if isinstance(__obj, Macro) else 1
        charge(steps + sum(size_of(a) for a in args) // BYTES_PER_STEP)
        if isinstance(__obj, (types.BuiltinMethodType, types.MethodType)):
            args = __self.checks.method(__obj, args, kwargs)
        elif isinstance(__obj, LoopContext) and args:
            # `loop(children)` of a recursive loop iterates outside the counted iterable: count it too
            # (the body's static weight is not known here: a fixed weight per item).
            args = (counted_loop(args[0], RECURSIVE_ITEM_STEPS, 0), *args[1:])
        result = SandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs)
        if is_sequence(result):
            name = getattr(__obj, "name", None) or getattr(
                __obj, "__name__", "a call"
            )  # a macro's, a method's
            __self.checks.length(f"the result of {name}()", len(result))
        produced(result)
        return result

    def bounded_concat(self, join: Callable[[Any], str], parts: tuple[Any, ...]) -> str:
        self.checks.concat(parts)
        result = join(parts)
        produced(result)
        return result

    def _finalize_output(self, value: Any) -> Any:
        # What `{{ }}` writes, wherever it goes (the output, a macro's or a block's buffer).
        budget = current_budget.get()
        if budget is not None:
            if isinstance(value, str):
                budget.volume += len(value)
            elif isinstance(value, CONTAINERS):
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
            formatter = BoundedEscapeFormatter(self, self.checks, escape=f_self.escape)
        else:
            formatter = BoundedFormatter(self, self.checks)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()
            return str_type(formatter.vformat(f_self, args, kwargs))

        return wrapper

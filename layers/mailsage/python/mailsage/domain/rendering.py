"""Jinja2 rendering in the sandbox. A job's content compiles once into a `CompiledContent`,
then renders per recipient; undefined variables are errors, never silent blanks.

Compiling and rendering are bounded (the domain/sandbox/ package): a template that asks for too much time or
memory, or writes more than the content limit into one part, is a `template_error` naming the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from mailsage.domain.header_values import header_text_problem
from mailsage.errors import PayloadTooLarge, TemplateError

if TYPE_CHECKING:  # jinja2 is imported lazily: it is not needed to load a handler
    from jinja2 import Template as JinjaTemplate

    from mailsage.domain.models import Content
    from mailsage.domain.sandbox import BoundedEnvironment

# Parts are bounded by the content limit (settings.max_content_bytes) where the caller knows it;
# elsewhere (rendering an accepted job again) by the largest limit settings allow, so a part that
# was accepted at submit always renders again.
DEFAULT_MAX_PART_BYTES = 350_000


@dataclass(slots=True, frozen=True)
class Rendered:
    subject: str
    text: str | None
    html: str | None
    amp: str | None = None


@lru_cache(maxsize=8)
def _environment(autoescape: bool, max_bytes: int) -> BoundedEnvironment:
    from jinja2 import StrictUndefined

    from mailsage.domain.sandbox import BoundedEnvironment

    return BoundedEnvironment(
        max_bytes, autoescape=autoescape, undefined=StrictUndefined, keep_trailing_newline=True
    )


def _compile(source: str | None, part: str, autoescape: bool, max_bytes: int) -> JinjaTemplate | None:
    if source is None:
        return None
    from jinja2 import TemplateSyntaxError

    from mailsage.domain.sandbox import LimitExceeded, end_budget, start_budget

    budget = start_budget(max_bytes)  # constant folding runs template code at compile time
    try:
        return _compiled(source, autoescape, max_bytes)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{part}: {exc.message} (line {exc.lineno})", {"part": part}) from exc
    except (LimitExceeded, RecursionError, MemoryError, ArithmeticError, ValueError) as exc:
        # Folded constants over a limit, nesting too deep to parse, a literal too long to convert.
        raise _template_error(part, exc) from exc
    finally:
        end_budget(budget)


@lru_cache(maxsize=32)
def _compiled(source: str, autoescape: bool, max_bytes: int) -> JinjaTemplate:
    # Every chunk of a job, and every job of a campaign, has the same sources: a warm worker
    # compiles them once, not once per chunk (a 2 KB template costs about a millisecond). A compiled
    # template is immutable and safe to render from several threads.
    return _environment(autoescape, max_bytes).from_string(source)


def _template_error(part: str, exc: BaseException) -> TemplateError:
    """The caller's error for what a template's code raised (MemoryError included: never a 500)."""
    from jinja2 import TemplateError as JinjaError

    from mailsage.domain.sandbox import LimitExceeded

    if isinstance(exc, LimitExceeded):
        return TemplateError(f"{part}: {exc} (limit: {exc.limit})", {"part": part, "limit": exc.limit})
    if isinstance(exc, RecursionError):
        return TemplateError(
            f"{part}: the template nests or recurses too deeply (limit: depth)",
            {"part": part, "limit": "depth"},
        )
    if isinstance(exc, MemoryError):
        return TemplateError(
            f"{part}: the template needs too much memory (limit: memory)", {"part": part, "limit": "memory"}
        )
    if isinstance(exc, JinjaError):
        return TemplateError(f"{part}: {exc.message or type(exc).__name__}", {"part": part})
    if isinstance(exc, (ArithmeticError, TypeError, ValueError, LookupError, AttributeError)):
        # Template code can fail like any code (a division by zero, a bad filter argument).
        return TemplateError(f"{part}: {type(exc).__name__}: {exc}", {"part": part})
    raise exc


def _render(template: JinjaTemplate | None, part: str, variables: dict[str, Any]) -> str | None:
    if template is None:
        return None
    try:
        return template.environment.render(template, variables)  # type: ignore[attr-defined, no-any-return]
    except Exception as exc:
        raise _template_error(part, exc) from exc


def check_content_size(
    subject: str, text: str | None, html: str | None, limit: int, amp: str | None = None
) -> None:
    """Subject, text, HTML and AMP together must fit `limit` bytes (a stored item's size is bounded)."""
    size = sum(len(part.encode()) for part in (subject, text, html, amp) if part)
    if size > limit:
        raise PayloadTooLarge(f"subject, text and html are {size} bytes together; the limit is {limit}")


# Limits that are only reached after spending the budget (the others are refused before any work).
_COSTLY_LIMITS = frozenset({"steps", "cpu_time", "volume", "depth", "memory"})


class CompiledContent:
    """Subject, text and HTML compiled once; `render` is the per-recipient hot path. Each part
    renders to at most `max_bytes` (the content limit)."""

    __slots__ = ("_subject", "_text", "_html", "_amp", "_overrun", "_overruns")

    # A content whose renders ran out of budget this many times is not rendered again: a batch of a
    # thousand recipients costs a few budgets, not a thousand.
    MAX_OVERRUNS = 3

    def __init__(
        self,
        subject: str,
        text: str | None,
        html: str | None,
        amp: str | None = None,
        max_bytes: int = DEFAULT_MAX_PART_BYTES,
    ) -> None:
        self._overrun: TemplateError | None = None
        self._overruns = 0
        self._subject = _compile(subject, "subject", False, max_bytes)
        self._text = _compile(text, "text", False, max_bytes)
        self._html = _compile(html, "html", True, max_bytes)
        self._amp = _compile(amp, "amp", True, max_bytes)

    @classmethod
    def of(cls, content: Content, max_bytes: int = DEFAULT_MAX_PART_BYTES) -> CompiledContent:
        return cls(content.subject, content.text, content.html, content.amp, max_bytes)

    @classmethod
    def for_sending(cls, content: Content) -> CompiledContent | Uncompilable:
        """Accepted content, compiled for the sender: if it no longer compiles (accepted before a
        limit, or under a larger one), each message fails with the error instead of the chunk."""
        try:
            return cls.of(content)
        except TemplateError as exc:
            return Uncompilable(exc)

    def render(self, variables: dict[str, Any]) -> Rendered:
        if self._overruns >= self.MAX_OVERRUNS and self._overrun is not None:
            raise TemplateError(
                f"{self._overrun.message}; not rendered again after {self._overruns} such renders",
                self._overrun.details,
            )
        try:
            return self._render(variables)
        except TemplateError as exc:
            if isinstance(exc.details, dict) and exc.details.get("limit") in _COSTLY_LIMITS:
                self._overrun, self._overruns = exc, self._overruns + 1
            raise

    def _render(self, variables: dict[str, Any]) -> Rendered:
        subject = _render(self._subject, "subject", variables) or ""
        problem = header_text_problem(subject, tab=False)  # the rule of every header value
        if problem:
            raise TemplateError(f"subject: the rendered subject contains {problem}", {"part": "subject"})
        return Rendered(
            subject=subject.strip(),
            text=_render(self._text, "text", variables),
            html=_render(self._html, "html", variables),
            amp=_render(self._amp, "amp", variables),
        )


@dataclass(slots=True, frozen=True)
class Uncompilable:
    """Content that does not compile: every render raises its error."""

    error: TemplateError

    def render(self, variables: dict[str, Any]) -> Rendered:
        raise TemplateError(self.error.message, self.error.details)

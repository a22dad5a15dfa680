"""Jinja2 rendering in the sandbox. A job's content compiles once into a `CompiledContent`,
then renders per recipient; undefined variables are errors, never silent blanks."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from mailsage.domain.header_values import header_text_problem
from mailsage.errors import PayloadTooLarge, TemplateError

if TYPE_CHECKING:  # jinja2 is imported lazily: it is not needed to load a handler
    from jinja2 import Template as JinjaTemplate
    from jinja2.sandbox import SandboxedEnvironment

    from mailsage.domain.models import Content


@dataclass(slots=True, frozen=True)
class Rendered:
    subject: str
    text: str | None
    html: str | None
    amp: str | None = None


@lru_cache(maxsize=2)
def _environment(autoescape: bool) -> SandboxedEnvironment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(autoescape=autoescape, undefined=StrictUndefined, keep_trailing_newline=True)


def _compile(source: str | None, part: str, autoescape: bool) -> JinjaTemplate | None:
    if source is None:
        return None
    from jinja2 import TemplateSyntaxError

    try:
        return _compiled(source, autoescape)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{part}: {exc.message} (line {exc.lineno})", {"part": part}) from exc


@lru_cache(maxsize=32)
def _compiled(source: str, autoescape: bool) -> JinjaTemplate:
    # Every chunk of a job, and every job of a campaign, has the same sources: a warm worker
    # compiles them once, not once per chunk (a 2 KB template costs about a millisecond). A compiled
    # template is immutable and safe to render from several threads.
    return _environment(autoescape).from_string(source)


def _render(template: JinjaTemplate | None, part: str, variables: dict[str, Any]) -> str | None:
    if template is None:
        return None
    from jinja2 import TemplateError as JinjaError

    try:
        return template.render(variables)
    except JinjaError as exc:
        raise TemplateError(f"{part}: {exc.message or type(exc).__name__}", {"part": part}) from exc
    except (ArithmeticError, TypeError, ValueError, LookupError) as exc:
        # Template code can fail like any code (a division by zero, a bad filter argument).
        raise TemplateError(f"{part}: {type(exc).__name__}: {exc}", {"part": part}) from exc


def check_content_size(
    subject: str, text: str | None, html: str | None, limit: int, amp: str | None = None
) -> None:
    """Subject, text, HTML and AMP together must fit `limit` bytes (a stored item's size is bounded)."""
    size = sum(len(part.encode()) for part in (subject, text, html, amp) if part)
    if size > limit:
        raise PayloadTooLarge(f"subject, text and html are {size} bytes together; the limit is {limit}")


class CompiledContent:
    """Subject, text and HTML compiled once; `render` is the per-recipient hot path."""

    __slots__ = ("_subject", "_text", "_html", "_amp")

    def __init__(self, subject: str, text: str | None, html: str | None, amp: str | None = None) -> None:
        self._subject = _compile(subject, "subject", autoescape=False)
        self._text = _compile(text, "text", autoescape=False)
        self._html = _compile(html, "html", autoescape=True)
        self._amp = _compile(amp, "amp", autoescape=True)

    @classmethod
    def of(cls, content: Content) -> CompiledContent:
        return cls(content.subject, content.text, content.html, content.amp)

    def render(self, variables: dict[str, Any]) -> Rendered:
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

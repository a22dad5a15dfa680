from __future__ import annotations

import pytest

from mailsage.domain.rendering import CompiledContent
from mailsage.errors import TemplateError


def test_html_is_autoescaped_and_text_is_not() -> None:
    rendered = CompiledContent("Hi {{ n }}", "Hi {{ n }}", "<p>{{ n }}</p>").render({"n": "<b>&"})
    assert rendered.html == "<p>&lt;b&gt;&amp;</p>"
    assert rendered.text == "Hi <b>&"
    assert rendered.subject == "Hi <b>&"


def test_an_undefined_variable_is_a_template_error_naming_it() -> None:
    with pytest.raises(TemplateError, match="'company' is undefined"):
        CompiledContent("Welcome to {{ company }}", "x", None).render({})


def test_a_syntax_error_is_reported_with_the_part_and_line() -> None:
    with pytest.raises(TemplateError, match=r"html: .*\(line 2\)"):
        CompiledContent("s", None, "ok\n{% if %}")


def test_the_sandbox_refuses_access_to_python_internals() -> None:
    compiled = CompiledContent("s", "{{ ''.__class__.__mro__[1].__subclasses__() }}", None)
    with pytest.raises(TemplateError):
        compiled.render({})


def test_errors_raised_by_template_code_are_template_errors() -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        CompiledContent("s", "{{ 1 / n }}", None).render({"n": 0})


def test_a_variable_that_puts_a_line_break_in_the_subject_is_rejected() -> None:
    with pytest.raises(TemplateError, match="line break"):
        CompiledContent("Hi {{ n }}", "x", None).render({"n": "a\r\nBcc: victim@example.com"})


def test_a_variable_that_puts_a_control_character_in_the_subject_is_rejected() -> None:
    with pytest.raises(TemplateError, match="control character"):
        CompiledContent("Hi {{ n }}", "x", None).render({"n": "a\x00b"})

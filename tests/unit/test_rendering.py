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


# -- the bounded sandbox keeps Jinja's meaning ------------------------------------------------------


def test_concatenation_escapes_in_html_only() -> None:
    # Given `~` joining a safe value and text with markup, in each part
    compiled = CompiledContent("s", "{{ ('<b>'|safe) ~ x }}", "{{ ('<b>'|safe) ~ x }}")
    rendered = compiled.render({"x": "<i>"})
    # Then HTML escapes the unsafe operand only, and text joins as written
    assert rendered.html == "<b>&lt;i&gt;"
    assert rendered.text == "<b><i>"


def test_str_format_on_markup_escapes_its_arguments() -> None:
    rendered = CompiledContent("s", None, "{{ ('<p>{}</p>'|safe).format(x) }}").render({"x": "<script>"})
    assert rendered.html == "<p>&lt;script&gt;</p>"


def test_macros_call_blocks_loops_and_recursive_loops_still_work() -> None:
    html = (
        "{% macro box() %}[{{ caller() }}]{% endmacro %}"
        "{% call box() %}in{% endcall %}"
        "{% for n in tree recursive %}{{ n.name }}{% if n.kids %}({{ loop(n.kids) }}){% endif %}{% endfor %}"
        "{% for x in [1, 2, 3] if x > 1 %}{{ loop.index }}{{ x }}{% else %}none{% endfor %}"
    )
    tree = [{"name": "a", "kids": [{"name": "b", "kids": []}]}]
    assert CompiledContent("s", None, html).render({"tree": tree}).html == "[in]a(b)1223"


def test_a_refused_constant_is_a_compile_error_and_a_harmless_one_is_folded() -> None:
    # Given constants: one over the integer limit, one fine
    with pytest.raises(TemplateError, match=r"limit: int_bits"):
        CompiledContent("s", None, "{{ 10**5000 }}")
    # Then the harmless one renders its value
    assert (
        CompiledContent("s", None, "{{ 2**64 }} {{ 'ab' * 2 }}").render({}).html
        == "18446744073709551616 abab"
    )


def test_a_recursion_error_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match=r"limit: depth"):
        CompiledContent("s", None, "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").render({})


def test_a_memory_error_is_a_template_error_not_a_crash() -> None:
    # Given a value that cannot be written without running out of memory
    class Huge:
        def __str__(self) -> str:
            raise MemoryError

    # When rendered, Then it is a template_error naming the limit
    with pytest.raises(TemplateError, match=r"limit: memory"):
        CompiledContent("s", "{{ x }}", None).render({"x": Huge()})

"""The hostile-template corpus: templates that ask for unbounded CPU time or memory, each with the
variables that make it hostile and the limits that may stop it (`limit` in the error's message).
Used by tests/security/test_template_budgets.py and by the hostile-template benchmark."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STEPS = frozenset({"steps", "cpu_time"})  # which one a loop hits first depends on the machine


@dataclass(frozen=True)
class Hostile:
    name: str
    html: str
    variables: dict[str, Any] = field(default_factory=dict)
    # The limits that may stop it; empty: any template_error (Python's own refusal, e.g. a literal of
    # more than 4,300 digits).
    limits: frozenset[str] = frozenset()
    at_compile: bool = False  # refused when the template is created (constant folding, parsing)


def _h(
    name: str, html: str, limits: str | frozenset[str], at_compile: bool = False, **variables: Any
) -> Hostile:
    wanted = frozenset({limits}) if isinstance(limits, str) else limits
    return Hostile(name, html, variables, wanted, at_compile)


CORPUS: list[Hostile] = [
    # big-integer math holds the GIL
    _h("power-constant", "{{ (9**15000000) > 0 }}", "int_bits", at_compile=True),
    _h("power-variables", "{{ (b ** e) > 0 }}", "int_bits", b=9, e=15_000_000),
    _h("power-10-5000", "{{ 10**5000 }}", "int_bits", at_compile=True),
    _h("product-of-powers", "{{ (x ** 400) * (x ** 400) }}", "int_bits", x=10**3),
    _h("filesizeformat-huge", "{{ n|filesizeformat }}", frozenset(), n=10**1000),
    _h("integer-literal-5000-digits", "{{ " + "9" * 5000 + " }}", frozenset(), at_compile=True),
    # repetition and concatenation
    _h("repeat-constant", "{{ ('a' * 200000000)|length }}", "value_size", at_compile=True),
    _h("repeat-10-12", "{{ ('a' * 10**12)|length }}", "value_size"),
    _h("repeat-variables", "{{ (s * n)|length }}", "value_size", s="a", n=10**9),
    _h("list-repeat", "{{ ([1] * n)|length }}", "value_size", n=10**9),
    _h("list-repr", "{% set s = 'x' * 300000 %}{{ [s] * 1000 }}", "value_size"),
    _h("dict-literal", "{{ {'a': s * 100000, 'b': s * 100000} }}", "value_size", s="xyz"),
    _h("concat-chain", "{% set s = 'x' * 100000 %}{{ s ~ s ~ s ~ s }}", "value_size"),
    _h(
        "namespace-doubling",
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
        "{{ ns.s|length }}",
        "value_size",
    ),
    _h(
        "list-extend-doubling",
        "{% set l = [1] %}{% for i in range(60) %}{{ l.extend(l) }}{% endfor %}",
        "value_size",
    ),
    _h("str-replace-empty", "{{ (s * 100000).replace('', t) }}", "value_size", s="a", t="x" * 1000),
    _h("int-to-bytes", "{{ (1).to_bytes(n, 'big')|length }}", "value_size", n=10**9),
    _h("expandtabs", "{{ t.expandtabs(n) }}", "value_size", t="\t" * 1000, n=10**6),
    _h("sum-of-lists", "{{ ([[1]] * 100000)|sum(start=[]) }}", "value_size"),
    # format widths and precisions
    _h("format-width", "{{ '{:>100000000}'.format(1) }}", "value_size"),
    _h("format-nested-width", "{{ '{:>{w}}'.format(1, w=w) }}", "value_size", w=10**8),
    _h("format-precision", "{{ '{:.1000000f}'.format(x) }}", "value_size", x=1.5),
    _h("percent-format-filter", "{{ '%100000000s'|format(1) }}", "value_size", at_compile=True),
    _h("percent-star", "{{ '%0*d' % (w, 1) }}", "value_size", w=10**8),
    _h("percent-named-repeat", "{{ (f * 10000) % {'a': s} }}", "value_size", f="%(a)s", s="x" * 10000),
    # amplifying filters
    _h("center", "{{ s|center(w) }}", "value_size", s="a", w=10**9),
    _h("indent", "{{ s|indent(w) }}", "value_size", s="a\nb", w=10**9),
    _h("wordwrap", "{{ s|wordwrap(1, wrapstring=t) }}", "value_size", s="a " * 5000, t="x" * 1000),
    _h("truncate", "{{ s|truncate(n) }}", "value_size", s="abc", n=10**9),
    _h("join-huge-range", "{{ range(100000)|join(sep) }}", "value_size", sep="x" * 10000),
    _h("batch-fill", "{{ s|batch(n, 'x')|list|length }}", "value_size", s="ab", n=10**9),
    _h("slice-count", "{{ s|slice(n)|list|length }}", "value_size", s="ab", n=10**9),
    _h("tojson-indent", "{{ d|tojson(indent=n) }}", "value_size", d={"a": [1, 2]}, n=10**9),
    _h("lipsum", "{{ lipsum(n) }}", "value_size", n=10**6),
    _h(
        "map-center-join",
        "{{ range(100000)|map('center', 300000)|join }}",
        frozenset({"volume", "value_size"}),
    ),
    # loops, macros, recursion
    _h("nested-range", "{% for i in range(7000) %}{% for j in range(7000) %}{% endfor %}{% endfor %}", STEPS),
    _h(
        "recursive-loop",
        "{% for i in [0] recursive %}{% if i == 99999 or not loop.depth0 and i == 0 %}"
        "{{ loop(range(100000)) }}{% endif %}{% endfor %}",
        STEPS | {"depth"},
    ),
    _h("recursive-macro", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "depth"),
    _h(
        "exponential-macro",
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
        STEPS,
    ),
    _h(
        "loop-in-macro",
        "{% macro m() %}{% for i in range(100000) %}{{ loop.index }}{% endfor %}{% endmacro %}"
        "{% for i in range(100000) %}{{ m()|length }}{% endfor %}",
        STEPS | {"volume", "value_size"},  # a macro's output over the limit, when it is fast enough
    ),
    _h("constant-text-in-loop", "{% for i in range(100000) %}" + "x" * 1000 + "{% endfor %}", "volume"),
    _h(
        "escaped-values-kept",
        "{% set l = [] %}{% for i in range(100000) %}{{ l.append(s|e) }}{% endfor %}",
        "volume",
        s="<" * 4000,
    ),
    _h("output-over-limit", "{% for i in range(1000) %}{{ s }}{% endfor %}", "output_size", s="x" * 1000),
    _h("deep-parentheses", "{{ " + "(" * 10000 + "1" + ")" * 10000 + " }}", "depth", at_compile=True),
]

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

Modules: `budget` (limits, the per-render budget, charging), `checks` (value pre-checks and the
bounded formatters), `filters` (wrapped filters, lipsum), `codegen` (compile-time counting and
folding checks), `environment` (`BoundedEnvironment`, which puts them together).
"""

from mailsage.domain.sandbox.budget import (
    MAX_CPU_SECONDS,
    MAX_INT_BITS,
    MAX_LIPSUM_WORDS,
    MAX_STEPS,
    MAX_VOLUME_FACTOR,
    Budget,
    LimitExceeded,
    end_budget,
    start_budget,
)
from mailsage.domain.sandbox.environment import BoundedEnvironment

__all__ = [
    "MAX_CPU_SECONDS",
    "MAX_INT_BITS",
    "MAX_LIPSUM_WORDS",
    "MAX_STEPS",
    "MAX_VOLUME_FACTOR",
    "BoundedEnvironment",
    "Budget",
    "LimitExceeded",
    "end_budget",
    "start_budget",
]

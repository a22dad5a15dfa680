"""The shape of the code, checked on its source (ast and tokenize; nothing is imported):

- every module of the mailsage package, functions/ and infra/ holds at most 600 lines, and every
  function at most 60 (from its `def` to its last line);
- the domain does no I/O and speaks no wire format: nothing under `mailsage/domain/` imports a
  socket, an HTTP or SMTP client, an AWS SDK, SQLite, or MailSage's adapters, API, local runtime
  or wiring (lazy imports inside functions and relative imports count too);
- no comment or docstring cites an issue number: a comment says why, and the why must still make
  sense to someone who never reads the tracker.

Each failure lists every offender with its file and line.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "mailsage" / "python" / "mailsage"
DOMAIN = PACKAGE / "domain"
SHAPED = (PACKAGE, ROOT / "functions", ROOT / "infra")
CITING = (ROOT / "layers", ROOT / "functions", ROOT / "infra")

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60
# What the domain may not import (each name covers its submodules too).
DOMAIN_FORBIDDEN = (
    "socket",
    "http.client",
    "urllib.request",
    "boto3",
    "botocore",
    "smtplib",
    "sqlite3",
    "mailsage.adapters",
    "mailsage.api",
    "mailsage.local",
    "mailsage.wiring",
)
ISSUE_CITATION = re.compile(r"\bissues?\s+#?\d+", re.IGNORECASE)


def python_files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- the checks (pure functions of a source text, so they are tested below on small sources) ----


def oversized(source: str) -> Iterator[tuple[int, str]]:
    """(line, what) for the module if it is over MAX_MODULE_LINES and each function over
    MAX_FUNCTION_LINES."""
    lines = source.count("\n")
    if lines > MAX_MODULE_LINES:
        yield 1, f"module has {lines} lines (max {MAX_MODULE_LINES})"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                yield node.lineno, f"function {node.name} has {length} lines (max {MAX_FUNCTION_LINES})"


def imported_modules(source: str, module: str) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in `source`, relative imports resolved against `module`
    (the importing module's dotted name); `from a import b` yields both `a` and `a.b`, since b
    may be a submodule."""
    package = module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"


def forbidden_imports(source: str, module: str) -> Iterator[tuple[int, str]]:
    seen = set()
    for line, name in imported_modules(source, module):
        for banned in DOMAIN_FORBIDDEN:
            if (name == banned or name.startswith(banned + ".")) and (line, banned) not in seen:
                seen.add((line, banned))
                yield line, f"imports {name} ({banned} is not for the domain)"


def issue_citations(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) for each comment or docstring that cites an issue number."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and ISSUE_CITATION.search(token.string):
            yield token.start[0], token.string.strip()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstring = body[0].value.value
                if isinstance(docstring, str) and (match := ISSUE_CITATION.search(docstring)):
                    yield body[0].lineno, f"docstring: ...{match.group(0)}..."


def module_name(path: Path) -> str:
    """The dotted name, `__init__` kept: a module's package is then always all but its last part."""
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def report(title: str, offenders: list[str]) -> str:
    return f"{title} ({len(offenders)}):\n  " + "\n  ".join(offenders)


# --- the rules, over the code ----------------------------------------------------------------


def test_modules_and_functions_stay_small() -> None:
    # Given every module of the package, functions/ and infra/
    # When each is measured
    offenders = [
        f"{relative(path)}:{line}: {what}"
        for path in python_files(*SHAPED)
        for line, what in oversized(path.read_text())
    ]
    # Then none is over 600 lines and no function over 60
    assert not offenders, report("modules or functions over the size limits", offenders)


def test_the_domain_imports_no_io_and_no_outer_layer() -> None:
    # Given every module under mailsage/domain/
    # When its imports are read (lazy and relative ones included)
    offenders = [
        f"{relative(path)}:{line}: {what}"
        for path in python_files(DOMAIN)
        for line, what in forbidden_imports(path.read_text(), module_name(path))
    ]
    # Then none reaches I/O, a wire format's client, or an adapter, the API, the local runtime or wiring
    assert not offenders, report("forbidden imports in the domain", offenders)


def test_no_comment_or_docstring_cites_an_issue_number() -> None:
    # Given every Python file under layers/, functions/ and infra/
    # When its comments and docstrings are read
    offenders = [
        f"{relative(path)}:{line}: {text}"
        for path in python_files(*CITING)
        for line, text in issue_citations(path.read_text())
    ]
    # Then none cites an issue number
    assert not offenders, report("comments or docstrings citing an issue", offenders)


# --- the checks themselves -------------------------------------------------------------------


def test_a_function_of_61_lines_and_a_module_of_601_are_named() -> None:
    # Given a function of 61 lines in a module of 601 lines, and one of 60
    long_function = "def long():\n" + "    x = 1\n" * 60
    short_function = "def short():\n" + "    x = 1\n" * 59
    source = long_function + short_function + "\n" * (601 - 121)
    # When measured
    found = list(oversized(source))
    # Then the module and the long function are named, the short one is not
    assert found == [
        (1, "module has 601 lines (max 600)"),
        (1, "function long has 61 lines (max 60)"),
    ]


def test_forbidden_imports_are_found_however_they_are_written() -> None:
    # Given a domain module importing I/O and outer layers in each way Python allows
    source = "\n".join(
        [
            "import socket",
            "from http import client",
            "import urllib.request as request",
            "from ..adapters.sandbox import SandboxTransport",
            "from .. import wiring",
            "def lazy():",
            "    import boto3.session",
            "from urllib.parse import urlsplit",
            "from . import mailbox",
            "import http.cookies",
        ]
    )
    # When its imports are checked
    found = [line for line, _ in forbidden_imports(source, "mailsage.domain.example")]
    # Then each forbidden one is named by its line, and urllib.parse, http.cookies and a sibling are not
    assert found == [1, 2, 3, 4, 5, 7]


def test_issue_citations_are_found_in_comments_and_docstrings_only() -> None:
    # Given a module citing issues in a comment and a docstring, and a string that is neither
    source = '"""Written since Issue 6."""\n\nx = 1  # see issue #14\nmessage = "issue 3"\n'
    # When read
    found = [line for line, _ in issue_citations(source)]
    # Then the comment and the docstring are named, the string is not
    assert sorted(found) == [1, 3]


def test_module_names_resolve_packages_and_modules() -> None:
    assert module_name(DOMAIN / "mailbox.py") == "mailsage.domain.mailbox"
    assert module_name(DOMAIN / "__init__.py") == "mailsage.domain.__init__"

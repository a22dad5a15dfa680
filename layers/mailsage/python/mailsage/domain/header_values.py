"""What caller text may contain before it goes into a header (a subject, a name, a header value,
a file name): one rule for every surface, checked at submit so a bad value is a 400, not a failed
message at send time.

Refused: CR and LF (a new header line), the other C0 controls and DEL, the C1 controls (NEL
U+0085 among them), U+2028 and U+2029 (line and paragraph separators: `str.splitlines` breaks on
them, as on FS, GS, RS, VT and FF), and lone surrogates (not Unicode text, cannot be encoded). A
tab is whitespace in a header and is allowed where the caller's field allows it.

RFC 2047 encoded words (`=?utf-8?q?...?=`) are not refused: the MIME builder writes caller text
so that they reach the recipient as those literal characters (domain/mime.py).
"""

from __future__ import annotations

import re

_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def header_text_problem(value: str | None, *, tab: bool = True) -> str | None:
    """What is wrong with `value` as header text ("a line break (U+000A)", ...), or None."""
    if not value:
        return None
    found = _FORBIDDEN.search(value)
    if found is None:
        if tab or "\t" not in value:
            return None
        char = "\t"
    else:
        char = found.group()
    code = f"U+{ord(char):04X}"
    if char in "\r\n":
        return f"a line break ({code})"
    if "\ud800" <= char <= "\udfff":
        return f"a lone surrogate ({code})"
    return f"a control character ({code})"

"""The legacy chunk-state layout: lists `statuses`, `attempts`, `changed_at` (epoch seconds),
`error_codes`, `error_messages`, NULL where unset. It reads as it is (it already is the plain view
chunk_layout.py unpacks the packed layout into), and is written in its own layout.

Why it is kept: the packed layout arrived on 2026-11-23 (commit 76c7069, "DynamoStore: packed chunk
states"); a table that a deployment of an earlier version wrote to may still hold chunk states in
this layout (and message items without `t0`, which say so), and a job of theirs may still be sent,
stopped or reported on. When it could go: once no deployed table can hold such an item, i.e. every
deployment has run a packed-layout version for longer than its records' retention (their TTL has
deleted them), or their items were rewritten. Removing it is this module and the two lines that
import it (codec.py's names, chunk_states.layout_of)."""

from __future__ import annotations

from mailsage.adapters.aws.dynamodb.chunk_layout import Layout


class LegacyLayout:
    __slots__ = ()

    def status(self, p: int) -> str:
        return f"#st[{p}]"

    def changed(self, p: int) -> str:
        return f"#changed[{p}]"

    def tries(self, p: int) -> str:
        return f"#tries[{p}]"

    def code(self, status: str) -> str:
        return str(status)

    def stamp(self, when: float, t0: float) -> int | float:
        """Epoch seconds, as they are."""
        return when

    def time(self, when: float, t0: float) -> float:
        return float(self.stamp(when, t0))

    def error(self, which: str, p: int, value: str | None, placeholder: str) -> tuple[str | None, str | None]:
        """An unset error is NULL in its list."""
        return f"{'#codes' if which == 'code' else '#errors'}[{p}] = {placeholder}", None


LEGACY: Layout = LegacyLayout()

LEGACY_NAMES = {
    "#st": "statuses",
    "#tries": "attempts",
    "#changed": "changed_at",
    "#codes": "error_codes",
    "#errors": "error_messages",
}

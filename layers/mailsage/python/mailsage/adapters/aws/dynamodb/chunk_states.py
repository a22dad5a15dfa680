"""Writes to chunk states, in the layout each item is in: one message's position (conditional on its
status), positions of a chunk in groups (retrying lost races), and the event log a transition
appends to the message's LOG item."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mailsage.adapters.aws.dynamodb.chunk_layout import PACKED, PACKED_MARK, Layout
from mailsage.adapters.aws.dynamodb.keys import LOG_SK, Item, make_key, message_key, state_key
from mailsage.adapters.aws.dynamodb.legacy_layout import LEGACY
from mailsage.adapters.aws.dynamodb.reads import Reads
from mailsage.adapters.aws.dynamodb.records import message_id_of
from mailsage.adapters.aws.table import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE
from mailsage.domain.job_states import UNSTARTED_MESSAGES
from mailsage.domain.models import MessageStatus


def layout_of(item: Item) -> tuple[Layout, float]:
    """The layout of a chunk state (or of the message item pointing to it) and its t0: packed
    states and their messages carry t0 (chunk_layout.py); the others are legacy."""
    return (PACKED, float(item[PACKED_MARK])) if PACKED_MARK in item else (LEGACY, 0.0)


class ChunkStates(Reads):
    """Conditional writes of chunk-state positions, and the message log."""

    POSITIONS_PER_UPDATE = 25  # messages moved by one UpdateItem (keeps expressions small)

    def _update_position(
        self,
        message: Item,
        build: Callable[[Layout, float], tuple[str, dict[str, Any], str]],
        returns: str | None = None,
    ) -> tuple[bool, Item | None]:
        """One conditional UpdateItem of the message's position in its chunk state, built for the
        state's layout, which the message item tells (a state that turns out to be in the other
        layout, e.g. kept from a create before the packed layout, is written again in its own)."""
        key = state_key(message["job_id"], int(message["chunk"]))
        layout, t0 = layout_of(message)
        for _ in range(2):
            update, values, condition = build(layout, t0)
            applied, current = self._try_update(key, update, values, condition, returns)
            if applied or current is None or layout_of(current)[0] == layout:
                break
            layout, t0 = layout_of(current)
        return applied, current

    def _move_positions(
        self,
        key: Item,
        state: Item | None,
        positions: Iterable[int],
        movable: Callable[[str, float], bool],
        condition: Callable[[Layout, int], str],
        values: Callable[[Layout, float], dict[str, Any]],
        to: MessageStatus,
        now: float,
    ) -> list[int]:
        """Move the positions of one chunk state that `movable` allows to `to`, in conditional
        UpdateItems of up to POSITIONS_PER_UPDATE positions, each guarded by `condition` per
        position. A write that loses a race to another writer gets the item as it is now, and the
        positions still movable are tried again. Returns the positions this call moved."""
        moved: list[int] = []
        ordered = sorted(positions)
        for start in range(0, len(ordered), self.POSITIONS_PER_UPDATE):
            group = ordered[start : start + self.POSITIONS_PER_UPDATE]
            current = state
            for _ in range(self.RACE_RETRIES):
                if current is None:
                    break
                statuses, changed = current["statuses"], current["changed_at"]
                ready = [p for p in group if p < len(statuses) and movable(statuses[p], float(changed[p]))]
                if not ready:
                    break
                layout, t0 = layout_of(current)
                applied, current = self._try_update(
                    key,
                    "SET "
                    + ", ".join(f"{layout.status(p)} = :to, {layout.changed(p)} = :now" for p in ready),
                    {**values(layout, t0), ":to": layout.code(to), ":now": layout.stamp(now, t0)},
                    " AND ".join(condition(layout, p) for p in ready),
                )
                if applied:
                    moved += ready
                    break
        return moved

    def _move_unsent(
        self, states: Iterable[Item], to: MessageStatus, now: float
    ) -> list[tuple[Item, list[int]]]:
        """queued|scheduled -> `to` in every chunk state given; the positions moved, per state."""
        moved: list[tuple[Item, list[int]]] = []
        for state in states:
            positions = self._move_positions(
                make_key(state[PARTITION_KEY], state[SORT_KEY]),
                state,
                range(len(state["statuses"])),
                lambda status, _changed_at: status in UNSTARTED_MESSAGES,
                lambda layout, p: f"{layout.status(p)} IN (:queued, :scheduled)",
                lambda layout, _t0: {
                    ":queued": layout.code(MessageStatus.QUEUED),
                    ":scheduled": layout.code(MessageStatus.SCHEDULED),
                },
                to,
                now,
            )
            if positions:
                moved.append((state, positions))
        return moved

    def _log_event(
        self,
        message: Item,
        now: float,
        status: str,
        text: str | None,
        times: dict[str, float] | None = None,
        earlier: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Append an event (after `earlier` ones) to the message's log item (created by the first),
        setting `times` (#sent / #delivered) with it. The log expires with the message's records."""
        sets = ["#events = list_append(if_not_exists(#events, :empty), :event)"]
        values: dict[str, Any] = {
            ":empty": [],
            ":event": [*earlier, {"time": now, "status": status, "log": text or ""}],
        }
        if message.get(TTL_ATTRIBUTE) is not None:
            sets.append("#ttl = :ttl")
            values[":ttl"] = message[TTL_ATTRIBUTE]
        for i, (name, value) in enumerate((times or {}).items()):
            # sent_at is set once: a log written before the send stopped logging may hold it already
            sets.append(
                f"{name} = if_not_exists({name}, :time{i})" if name == "#sent" else f"{name} = :time{i}"
            )
            values[f":time{i}"] = value
        self._try_update(message_key(message_id_of(message), LOG_SK), "SET " + ", ".join(sets), values)

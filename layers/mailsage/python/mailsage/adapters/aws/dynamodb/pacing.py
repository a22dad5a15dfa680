"""PacingStore on the table: one item per key holding the JSON state and a generation. A change
is a strongly consistent read, then a PutItem conditioned on the generation read (or on there being
no item); a writer that lost the race gets the winner's item with the failure
(ReturnValuesOnConditionCheckFailure) and re-runs the change on it without reading again."""

from __future__ import annotations

import json
import random
import time

from mailsage.adapters.aws.dynamodb.client import TableClient
from mailsage.adapters.aws.dynamodb.codec import to_json
from mailsage.adapters.aws.dynamodb.keys import DAY, Item, is_expired, pacing_key, ttl_not_before
from mailsage.adapters.aws.table import TTL_ATTRIBUTE
from mailsage.errors import ServiceUnavailable
from mailsage.ports import Change, PacingState
from mailsage.ports.pacing import T


class Pacing(TableClient):
    """PacingStore on the table."""

    # Every loss means another sender's change went through, so the state keeps moving; a writer
    # that still loses this often is starved, and its sender tries again later instead.
    PACING_ATTEMPTS = 40
    PACING_EAGER_ATTEMPTS = 3  # losses re-run at once on the winner's item, before backing off
    PACING_BACKOFF_SECONDS = (0.005, 0.25)  # first and longest pause (jittered, doubling)

    def change_pacing(self, key: str, change: Change[T]) -> T:
        item = self._get(pacing_key(key), consistent=True)
        for attempt in range(self.PACING_ATTEMPTS):
            new, result = change(_state(item))
            if new is None:
                return result
            written, current = self._put_returning(*_write(key, new, item))
            if written:
                return result
            item = current  # the winner's item (None: it was deleted since)
            if attempt + 1 >= self.PACING_EAGER_ATTEMPTS:
                # Losers spread out so that one gets through; what they held is stale after a pause.
                first, longest = self.PACING_BACKOFF_SECONDS
                time.sleep(
                    random.uniform(0, min(longest, first * 2 ** (attempt + 1 - self.PACING_EAGER_ATTEMPTS)))
                )
                item = self._get(pacing_key(key), consistent=True)
        raise ServiceUnavailable(
            f"the pacing state {key!r} changed under every one of {self.PACING_ATTEMPTS} attempts;"
            " try again shortly",
            retry_after=1,
        )

    def pacing_state(self, key: str) -> PacingState | None:
        return _state(self._get(pacing_key(key), consistent=True))


def _state(item: Item | None) -> PacingState | None:
    """The state an item holds; one not changed for a day is worthless (DynamoDB deletes it some
    time after its TTL) and reads as none."""
    if item is None or is_expired(item, time.time()):
        return None
    state: PacingState = json.loads(item["state"])
    return state


def _write(key: str, new: PacingState, read: Item | None) -> tuple[Item, str, dict[str, int] | None]:
    """The item to put and its condition: the generation read is still there (or still no item)."""
    gen = 0 if read is None else int(read["gen"])
    item = {
        **pacing_key(key),
        "state": to_json(new),
        "gen": gen + 1,
        TTL_ATTRIBUTE: ttl_not_before(time.time() + DAY),
    }
    if read is None:
        return item, "attribute_not_exists(#pk)", None
    return item, "#gen = :gen", {":gen": gen}

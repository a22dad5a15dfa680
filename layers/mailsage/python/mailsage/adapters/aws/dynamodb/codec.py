"""Python values <-> DynamoDB attribute values, expression names and placeholders, and item sizes.
Hand-rolled instead of boto3's TypeSerializer: floats round-trip exactly (repr), no Decimals."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from mailsage.adapters.aws.dynamodb.chunk_layout import PACKED_MARK, PACKED_NAMES, POSITION_NAME, unpack_state
from mailsage.adapters.aws.dynamodb.keys import CHUNK_PREFIX, Item
from mailsage.adapters.aws.dynamodb.legacy_layout import LEGACY_NAMES
from mailsage.adapters.aws.table import (
    GSI1_PARTITION_KEY,
    GSI1_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
)
from mailsage.domain.models import ENGAGEMENT_KINDS


def to_attribute(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes):
        return {"B": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"N": repr(value)}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {k: to_attribute(v) for k, v in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB: {value!r}")


def from_attribute(attribute: dict[str, Any]) -> Any:
    [(kind, raw)] = attribute.items()
    if kind == "S" or kind == "BOOL" or kind == "B":
        return raw
    if kind == "N":
        try:
            return int(raw)
        except ValueError:
            return float(raw)
    if kind == "NULL":
        return None
    if kind == "L":
        return [from_attribute(v) for v in raw]
    if kind == "M":
        return {k: from_attribute(v) for k, v in raw.items()}
    raise TypeError(f"unexpected DynamoDB attribute type {kind}")


def marshal(item: Item) -> dict[str, Any]:
    """Top-level None means "no such attribute" (absent), so optional fields read back as None."""
    return {name: to_attribute(value) for name, value in item.items() if value is not None}


def unmarshal(raw: dict[str, Any]) -> Item:
    """A packed chunk state also gets the plain view every reader uses (see unpack_state)."""
    item = {name: from_attribute(value) for name, value in raw.items()}
    if PACKED_MARK in item and str(item.get(SORT_KEY, "")).startswith(CHUNK_PREFIX):
        unpack_state(item)
    return item


# Every attribute an expression names goes through a placeholder (several are reserved words).
NAMES = {
    "#pk": PARTITION_KEY,
    "#sk": SORT_KEY,
    "#g1pk": GSI1_PARTITION_KEY,
    "#g1sk": GSI1_SORT_KEY,
    "#ttl": TTL_ATTRIBUTE,
    "#account": "account_id",
    "#state": "state",
    "#updated": "updated_at",
    "#started": "started_at",
    "#finished": "finished_at",
    "#dead": "dead_letters",
    "#paused_reason": "paused_reason",
    "#throttled": "throttled",
    "#send_rate": "send_rate",
    # chunk states, in either layout
    **PACKED_NAMES,
    **LEGACY_NAMES,
    "#events": "events",
    "#sent": "sent_at",
    "#delivered": "delivered_at",
    "#expires": "expires_at",
    "#created": "created_at",
    "#status": "status",
    "#body": "body",
    "#headers": "headers",
    "#gen": "gen",
    # engagement: per message on its LOG item ({kind}_count), per campaign job on its campaign item
    **{f"#{kind}_count": f"{kind}_count" for kind in ENGAGEMENT_KINDS},
    **{f"#{kind}": kind for kind in ENGAGEMENT_KINDS},
    # webhooks
    "#enabled": "enabled",
    "#reason": "disabled_reason",
    "#successes": "success_count",
    "#failures": "error_count",
    "#streak": "errors_since_last_success",
    "#last_request": "last_request_at",
}


def expression_names(*expressions: str | None) -> dict[str, str]:
    """The ExpressionAttributeNames the expressions use (DynamoDB rejects unused ones); `#p12` is
    the map key "12" (a position in a packed state's error maps)."""
    used = set(re.findall(r"#\w+", " ".join(e for e in expressions if e)))
    return {name: name[2:] if POSITION_NAME.fullmatch(name) else NAMES[name] for name in sorted(used)}


def update_expression(sets: Sequence[str], removes: Sequence[str] = ()) -> str:
    return " ".join(
        part
        for part in (
            "SET " + ", ".join(sets) if sets else "",
            "REMOVE " + ", ".join(removes) if removes else "",
        )
        if part
    )


def placeholders(prefix: str, values: Iterable[str]) -> dict[str, str]:
    return {f":{prefix}{i}": v for i, v in enumerate(values)}


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def item_size(item: Item) -> int:
    """About what DynamoDB counts against its item limit: each attribute's name and value in UTF-8,
    a number at its largest (21 bytes), a list or map 3 bytes plus 1 per element (and its names)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items() if value is not None)


def _value_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode())
    if isinstance(value, bytes):
        return len(value)
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int | float):
        return 21
    if isinstance(value, list | tuple):
        return 3 + sum(1 + _value_size(v) for v in value)
    if isinstance(value, dict):
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in value.items())
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB: {value!r}")

"""The meter of the cost figure: every boto3 call under moto, counted and sized.

Every boto3 call is counted by service and operation with botocore event hooks on the default
session (`before-parameter-build` keeps the request, `after-call` sees the response; clients copy
the session's hooks when they are created, and the adapters create theirs on first use). From
them:
- DynamoDB write request units: per written item ceil(max(size before, size after) / 1 KB); a
  failed conditional write is charged too; BatchWriteItem per item; transactions x2; plus one
  index write per change of an item that carries the GSI key (two when the key changes).
- DynamoDB read request units: per item ceil(size / 4 KB), a Query on the sum of the items it
  returned, at least 1; halved when eventually consistent.
  Item sizes follow the DynamoDB developer guide (names + values, lists/maps 3 B + 1 B/element,
  numbers ~ digits/2 + 1), read from moto's table before and after each write (not boto3 calls).
- SQS requests: one per call and per 64 KB of payload.
- Each invocation's CPU (moto's own excluded) and the bytes its handler logs (`Invocations`).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any

from bench.prices import LATENCY_S, REGION

_WRITE_OPS = {"PutItem", "UpdateItem", "DeleteItem"}
_KB, _RU = 1024, 4096
GSI_KEY = "gsi1pk"
_Json = dict[str, Any]
_Units = tuple[float, float, float]  # (write units, index write units, read units)


# -- DynamoDB item sizes -----------------------------------------------------------------------
def _value_size(value: dict[str, Any]) -> int:
    [(kind, raw)] = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        digits = len(str(raw).lstrip("-").replace(".", "").lstrip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in raw.items())
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: v}) for v in raw)
    raise ValueError(kind)


def item_size(item: dict[str, Any] | None) -> int:
    """Bytes of an item in attribute-value form, per the DynamoDB developer guide."""
    return sum(len(name.encode()) + _value_size(v) for name, v in (item or {}).items())


# -- the meter ---------------------------------------------------------------------------------
class Meter:
    """Counts calls and units for one run. Also accumulates the CPU that is not the function's:
    moto answering a call, and the meter's own peeks at the table."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.calls: Counter[str] = Counter()
        self.wru = 0.0
        self.rru = 0.0
        self.index_wru = 0.0
        self.sqs_requests = 0
        self.io_wait: defaultdict[str, float] = defaultdict(float)  # service -> modelled seconds
        # "WRU UpdateItem CHUNK" -> units (the item kind is the sort key's prefix)
        self.units_by: defaultdict[str, float] = defaultdict(float)
        self.excluded_cpu = 0.0
        self.sent: list[_Json] = []  # what SES accepted: its message id, recipient and tags
        self._lock = threading.Lock()
        self._local = threading.local()

    @contextmanager
    def excluded(self) -> Iterator[None]:
        """CPU spent in here is not the function's (nested use counts once)."""
        if getattr(self._local, "inside", False):
            yield
            return
        self._local.inside = True
        start = time.thread_time()
        try:
            yield
        finally:
            spent = time.thread_time() - start
            self._local.inside = False
            with self._lock:
                self.excluded_cpu += spent

    # moto's table, read directly: not a boto3 call, never counted
    def _peek(self, key: dict[str, Any]) -> dict[str, Any] | None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        with self.excluded():
            try:
                item = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_item(self.table, key)
            except Exception:
                return None
            return json.loads(json.dumps(item.to_json()["Attributes"], default=str)) if item else None

    @staticmethod
    def _key(item: dict[str, Any]) -> dict[str, Any]:
        return {"pk": item["pk"], "sk": item["sk"]}

    # botocore hooks
    def before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        with self.excluded():
            context["bench_params"] = params
            if model.name in _WRITE_OPS:
                key = params["Key"] if "Key" in params else self._key(params["Item"])
                context["bench_before"] = [self._peek(key)]
            elif model.name == "BatchWriteItem":
                context["bench_before"] = [
                    self._peek(
                        self._key(r["PutRequest"]["Item"]) if "PutRequest" in r else r["DeleteRequest"]["Key"]
                    )
                    for requests in params["RequestItems"].values()
                    for r in requests
                ]

    def after(
        self, parsed: dict[str, Any], model: Any, context: dict[str, Any], event_name: str, **_: Any
    ) -> None:
        with self.excluded():
            service = event_name.split(".")[1]
            params = context.get("bench_params", {})
            with self._lock:
                self.calls[f"{service}:{model.name}"] += 1
                self.io_wait[service] += LATENCY_S.get(service, 0.0)
            if service == "dynamodb":
                self._dynamodb(model.name, params, parsed, context.get("bench_before", []))
            elif service == "sesv2" and model.name == "SendEmail" and "Error" not in parsed:
                with self._lock:
                    self.sent.append(_sent(params, parsed))
            elif service == "sqs":
                self._sqs(model.name, params, parsed)

    @staticmethod
    def _kind(key: dict[str, Any] | None) -> str:
        sk = (key or {}).get("sk", {}).get("S", "?")
        return str(sk).split("#")[0]

    def _add(self, unit: str, op: str, key: dict[str, Any] | None, amount: float) -> None:
        with self._lock:
            self.units_by[f"{unit} {op} {self._kind(key)}"] += amount

    def _dynamodb(self, op: str, params: dict[str, Any], parsed: dict[str, Any], before: list[Any]) -> None:
        measure = {
            "PutItem": self._item_write,
            "UpdateItem": self._item_write,
            "DeleteItem": self._item_write,
            "BatchWriteItem": self._batch_write,
            "TransactWriteItems": self._transact_write,
            "GetItem": self._get,
            "BatchGetItem": self._batch_get,
            "Query": self._query,
        }.get(op)
        wru, index, rru = measure(op, params, parsed, before) if measure else (0.0, 0.0, 0.0)
        with self._lock:
            self.wru += wru + index
            self.index_wru += index
            self.rru += rru

    # Each measure returns the request's _Units and books them by operation and item kind.

    def _item_write(self, op: str, params: _Json, parsed: _Json, before: list[Any]) -> _Units:
        old = before[0]
        if op == "DeleteItem":
            new = None
        elif op == "PutItem" and "Error" not in parsed:
            new = params["Item"]
        else:
            new = self._peek(params["Key"]) if "Error" not in parsed else old
        wru = max(1, math.ceil(max(item_size(old), item_size(new)) / _KB))
        index = self._index_writes(old, new)
        key = params["Key"] if "Key" in params else params["Item"]
        self._add("WRU", op, key, wru)
        self._add("WRU index", op, key, index)
        return wru, index, 0.0

    def _batch_write(self, op: str, params: _Json, parsed: _Json, before: list[Any]) -> _Units:
        wru = index = 0.0
        requests = [r for rs in params["RequestItems"].values() for r in rs]
        for request, old in zip(requests, before, strict=True):
            new = request["PutRequest"]["Item"] if "PutRequest" in request else None
            units = max(1, math.ceil(max(item_size(old), item_size(new)) / _KB))
            wru += units
            index += self._index_writes(old, new)
            key = new if new is not None else request["DeleteRequest"]["Key"]
            self._add("WRU", op, key, units)
            self._add("WRU index", op, key, self._index_writes(old, new))
        return wru, index, 0.0

    def _transact_write(self, op: str, params: _Json, parsed: _Json, before: list[Any]) -> _Units:
        wru = 2 * sum(
            max(1, math.ceil(item_size(i.get("Put", {}).get("Item")) / _KB)) for i in params["TransactItems"]
        )
        return wru, 0.0, 0.0

    def _get(self, op: str, params: _Json, parsed: _Json, before: list[Any]) -> _Units:
        factor = 1.0 if params.get("ConsistentRead") else 0.5
        rru = factor * max(1, math.ceil(item_size(parsed.get("Item")) / _RU))
        self._add("RRU", op, params["Key"], rru)
        return 0.0, 0.0, rru

    def _batch_get(self, op: str, params: _Json, parsed: _Json, before: list[Any]) -> _Units:
        rru = 0.0
        for table, request in params["RequestItems"].items():
            factor = 1.0 if request.get("ConsistentRead") else 0.5
            found = parsed.get("Responses", {}).get(table, [])
            for i in found:
                self._add("RRU", op, i, factor * max(1, math.ceil(item_size(i) / _RU)))
                rru += factor * max(1, math.ceil(item_size(i) / _RU))
            missing = len(request["Keys"]) - len(found)  # a miss costs the minimum (assumed)
            if missing:
                self._add("RRU", op + " (miss)", request["Keys"][0], factor * missing)
            rru += factor * missing
        return 0.0, 0.0, rru

    def _query(self, op: str, params: _Json, parsed: _Json, before: list[Any]) -> _Units:
        factor = 1.0 if params.get("ConsistentRead") else 0.5
        rru = factor * max(1, math.ceil(sum(item_size(i) for i in parsed.get("Items", [])) / _RU))
        with self._lock:
            self.units_by[f"RRU Query {params.get('IndexName', 'table')}"] += rru
        return 0.0, 0.0, rru

    @staticmethod
    def _index_writes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> float:
        """Writes to gsi1 (projection ALL; an index entry is the item + 100 bytes)."""
        had, has = bool(old and GSI_KEY in old), bool(new and GSI_KEY in new)
        if not had and not has:
            return 0
        units = 0
        if had and (not has or old[GSI_KEY] != new[GSI_KEY]):  # type: ignore[index]
            units += max(1, math.ceil((item_size(old) + 100) / _KB))
        if has:
            units += max(1, math.ceil((item_size(new) + 100) / _KB))
        return units

    def _sqs(self, op: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        if op == "SendMessageBatch":
            payload = sum(len(e["MessageBody"].encode()) for e in params["Entries"])
        elif op == "SendMessage":
            payload = len(params["MessageBody"].encode())
        elif op == "ReceiveMessage":
            payload = sum(len(m["Body"].encode()) for m in parsed.get("Messages", []))
        else:
            payload = 0
        with self._lock:
            self.sqs_requests += max(1, math.ceil(payload / (64 * 1024)))


@contextmanager
def metered_moto(meter: Meter) -> Iterator[None]:
    """moto in-process, the default boto3 session hooked to `meter`, moto's CPU excluded."""
    import boto3
    from moto import mock_aws
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        with meter.excluded():
            return original(self, *args, **kwargs)

    BotocoreStubber.__call__ = timed  # type: ignore[method-assign]
    try:
        with mock_aws():
            boto3.setup_default_session(region_name=REGION)
            events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
            events.register("before-parameter-build", meter.before)
            events.register("after-call", meter.after)
            try:
                yield
            finally:
                boto3.DEFAULT_SESSION = None
    finally:
        BotocoreStubber.__call__ = original  # type: ignore[method-assign]


def _sent(params: _Json, parsed: _Json) -> _Json:
    """One SES send as the events path needs it: SES's message id, the recipient, the tags."""
    return {
        "ses_message_id": parsed.get("MessageId", ""),
        "to": params["Destination"]["ToAddresses"][0],
        "tags": {t["Name"]: t["Value"] for t in params.get("EmailTags", [])},
    }


class _CountingStream:
    """A log stream that keeps only the size of what is written, by function. EMF lines (metrics)
    are counted apart: they are priced as one modelled line per invocation."""

    def __init__(self) -> None:
        self.function = "?"
        self.bytes: Counter[str] = Counter()
        self.emf: list[str] = []

    def write(self, text: str) -> int:
        if text.startswith('{"_aws"'):
            self.emf.append(text)
        else:
            self.bytes[self.function] += len(text.encode())
        return len(text)

    def flush(self) -> None:
        pass


class _RootLines(logging.Handler):
    """What the Lambda runtime writes for a record of a non-Powertools logger (JSON log format):
    the message in a JSON object with its time, level, logger and request id (~150 bytes)."""

    def __init__(self, stream: _CountingStream, level: str) -> None:
        super().__init__(level)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        line = {
            "timestamp": "2026-12-06T00:00:00.000Z",
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "requestId": "00000000-0000-0000-0000-000000000000",
        }
        self.stream.write(json.dumps(line) + "\n")


# The runtime's application log level (the function's LoggingConfig sets none: INFO, the JSON
# format's default): what non-Powertools loggers (the domain's, boto's) write. POWERTOOLS_LOG_LEVEL
# (the stack's log_level) moves only the handlers' Powertools loggers.
RUNTIME_LOG_LEVEL = "INFO"


class Invocations:
    """Calls a handler as Lambda would and books, by function: invocations, CPU (moto's own
    excluded) and the bytes logged at the deployed log level. Each handler module's Powertools
    logger and the root logger (what the runtime writes to the function's log group) are pointed
    at a counting stream while the handler runs."""

    def __init__(self, meter: Meter, log_level: str) -> None:
        self.meter = meter
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.wait: defaultdict[str, float] = defaultdict(float)  # modelled network wait, seconds
        self.count: Counter[str] = Counter()
        self.stream = _CountingStream()
        self.log_level = log_level

    def __call__(self, name: str, handler: Any, evt: dict[str, Any]) -> dict[str, Any]:
        from mailsage.local.functions import LocalContext

        self.stream.function = name
        powertools = logging.getLogger(f"mailsage-{name}")
        streams = [h for h in powertools.handlers if isinstance(h, logging.StreamHandler)]
        previous = [h.setStream(self.stream) for h in streams]  # type: ignore[arg-type]
        root, saved_level = logging.getLogger(), logging.getLogger().level
        lines = _RootLines(self.stream, RUNTIME_LOG_LEVEL)
        root.addHandler(lines)
        root.setLevel(RUNTIME_LOG_LEVEL)
        # Powertools configures a service's logger once per process: the run's level is set here
        own_level = powertools.level
        powertools.setLevel(self.log_level)
        excluded, start = self.meter.excluded_cpu, time.process_time()
        waited = sum(self.meter.io_wait.values())
        try:
            with redirect_stdout(self.stream):  # type: ignore[type-var]
                result = handler.lambda_handler(evt, LocalContext(f"mailsage-{name}"))
        finally:
            self.cpu[name] += (time.process_time() - start) - (self.meter.excluded_cpu - excluded)
            self.wait[name] += sum(self.meter.io_wait.values()) - waited
            root.removeHandler(lines)
            root.setLevel(saved_level)
            powertools.setLevel(own_level)
            for h, old in zip(streams, previous, strict=True):
                h.setStream(old)  # type: ignore[arg-type]
        self.count[name] += 1
        return dict(result)

    @property
    def log_bytes(self) -> dict[str, int]:
        return dict(self.stream.bytes)


def uncounted(service: str) -> Any:
    """A client the meter never sees (setting the scene is not the workload's cost)."""
    import boto3

    return boto3.session.Session(region_name=REGION).client(service)


def stored_bytes(table: str) -> int:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table(table)
    total = 0
    for item in backend.all_items():
        attrs = json.loads(json.dumps(item.to_json()["Attributes"], default=str))
        total += item_size(attrs) + 100  # DynamoDB adds 100 bytes of overhead per stored item
    return total

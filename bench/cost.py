"""Figure 3 — cost per 1,000 emails on AWS (the SES send itself excluded).

A 1,000-recipient batch runs through the AWS adapters under moto, in-process (`moto.mock_aws`):
the real `functions/api` handler accepts it, then the send queue is pumped through the real
`functions/sender` handler the way the SQS event source mapping does (ReceiveMessage of up to
SENDER_BATCH_SIZE records, one invocation, DeleteMessageBatch of the successes).

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
- Lambda: one request per api call and per sender invocation; duration from the handler CPU time
  measured here (time.process_time, with moto's own CPU inside the calls subtracted), scaled to
  Lambda's CPU share (a full vCPU at 1,769 MB), plus a modelled network wait per AWS call
  (LATENCY_S: an assumption, not a measurement), at the deployed memory size.
- API Gateway: one REST request per api call.
Priced with PRICES below. The naive design is priced with the same table.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.common import Figure, batch_body, log

RECIPIENTS = 1_000
RUNS = 3
REGION = "us-east-1"
SENDER_BATCH_SIZE = 5  # infra/capabilities.py SENDER_BATCH_SIZE (the send queue's event source batch size)
MEMORY_MB = {"api": 1024, "sender": 1024}  # infra/constructs/functions.py API / SENDER memory_mb
FULL_VCPU_MB = 1769  # Lambda allocates CPU in proportion to memory; one full vCPU at 1,769 MB
SES_PER_1000 = 0.10

# AWS list prices, us-east-1, as known to the author (from memory, not fetched) in 2024-11 — after
# the 2024-11-01 DynamoDB on-demand price cut. Check https://aws.amazon.com/<service>/pricing/.
PRICE_SOURCE = "AWS list prices as known 2024-11 (from memory, not fetched), us-east-1, no free tier"
PRICES: dict[str, float] = {
    "dynamodb_wru": 0.625 / 1e6,  # on-demand, per write request unit
    "dynamodb_rru": 0.125 / 1e6,  # on-demand, per read request unit
    "dynamodb_gb_month": 0.25,  # standard table class storage
    "sqs_request": 0.40 / 1e6,  # standard queue, per request (64 KB chunk)
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second_arm64": 0.0000133334,
    "apigw_rest_request": 3.50 / 1e6,  # first 333 M requests/month
    "ses_per_1000": SES_PER_1000,  # reference only: excluded from the infrastructure figure
}

# Modelled in-region latency of one call, seconds (an assumption: Lambda pays wall time while it
# waits). Batched and parallel calls are counted as if sequential: an upper bound.
LATENCY_S = {"dynamodb": 0.005, "sqs": 0.008, "sesv2": 0.030}

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


# -- one run ------------------------------------------------------------------------------------
def _resources(suffix: str) -> dict[str, str]:
    """Table, send queue + DLQ and the SES identity, created with a client the meter never sees."""
    import boto3

    from mailsage.adapters.aws.table import create_table_kwargs

    session = boto3.session.Session(region_name=REGION)
    table = f"bench-{suffix}"
    session.client("dynamodb").create_table(**create_table_kwargs(table))
    sqs = session.client("sqs")
    dlq = sqs.create_queue(QueueName=f"send-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 8})
    send = sqs.create_queue(
        QueueName=f"send-{suffix}", Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": "720"}
    )["QueueUrl"]
    session.client("sesv2").create_email_identity(EmailIdentity="mailsage.example")
    return {
        "MAILSAGE_BACKEND": "aws",
        "MAILSAGE_TABLE_NAME": table,
        "MAILSAGE_SEND_QUEUE_URL": send,
        "MAILSAGE_SEND_DLQ_URL": dlq,
        "MAILSAGE_DEFAULT_FROM": "MailSage <noreply@mailsage.example>",
        "MAILSAGE_SES_MAX_RATE": "14",  # a new production account's rate (moto has no GetAccount)
    }


class _Invocations:
    """Calls a handler as Lambda would and books its CPU (moto's own excluded) by function."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.cpu = {"api": 0.0, "sender": 0.0}
        self.count = Counter[str]()

    def __call__(self, name: str, handler: Any, evt: dict[str, Any]) -> dict[str, Any]:
        from mailsage.local.functions import LocalContext

        excluded, start = self.meter.excluded_cpu, time.process_time()
        result = handler.lambda_handler(evt, LocalContext(f"mailsage-{name}"))
        self.cpu[name] += (time.process_time() - start) - (self.meter.excluded_cpu - excluded)
        self.count[name] += 1
        return dict(result)


def _register_key(meter: Meter, suffix: str) -> str:
    """An API key, registered with a client the meter never sees."""
    from mailsage.adapters.aws.dynamodb import DynamoStore
    from mailsage.domain.auth import AuthService

    key = "bench-" + suffix
    AuthService(DynamoStore(meter.table, client=_uncounted("dynamodb"))).register_key(str(uuid.uuid4()), key)
    return key


def _submit_batch(key: str, api: Any, invoke: _Invocations) -> None:
    """One batch of RECIPIENTS through the api handler."""
    from mailsage.local.events import api_gateway_event

    body = json.dumps(batch_body(0, RECIPIENTS, text=True)).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    event = api_gateway_event("POST", "/api/v1/emails/batch", headers, body)
    reply = invoke("api", api, event)
    if reply["statusCode"] != 202 or json.loads(reply["body"])["accepted"] != RECIPIENTS:
        raise RuntimeError(f"batch not accepted: {reply['statusCode']} {reply['body'][:300]}")


def _drain_send_queue(sender: Any, invoke: _Invocations) -> None:
    """The event source mapping: receive a batch, invoke the sender, delete what succeeded."""
    import boto3

    from mailsage.local.events import sqs_event
    from mailsage.ports import Received

    esm = boto3.client("sqs")  # counted: these requests are billed to the account too
    queue_url = os.environ["MAILSAGE_SEND_QUEUE_URL"]
    while True:
        messages = esm.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=SENDER_BATCH_SIZE,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        if not messages:
            break
        received = [
            Received(
                m["ReceiptHandle"],
                json.loads(m["Body"]),
                int(m["Attributes"]["ApproximateReceiveCount"]),
                m["MessageId"],
            )
            for m in messages
        ]
        result = invoke("sender", sender, sqs_event(received))
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if failed:
            raise RuntimeError(f"sender reported failures: {failed}")
        esm.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
        )


def run_once() -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    meter = Meter(f"bench-{suffix}")
    invoke = _Invocations(meter)
    saved = dict(os.environ)
    os.environ.update({"AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"})
    try:
        with metered_moto(meter):
            os.environ.update(_resources(suffix))
            from mailsage.local.functions import load_handler

            key = _register_key(meter, suffix)
            api, sender = load_handler("api"), load_handler("sender")
            _submit_batch(key, api, invoke)
            api_wait = dict(meter.io_wait)
            _drain_send_queue(sender, invoke)
            sent = meter.calls["sesv2:SendEmail"]
            if sent != RECIPIENTS:
                raise RuntimeError(f"{sent} SES sends for {RECIPIENTS} recipients")
            stored = _stored_bytes(meter.table)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    sender_wait = {s: meter.io_wait[s] - api_wait.get(s, 0.0) for s in meter.io_wait}
    return {
        "calls": dict(sorted(meter.calls.items())),
        "wru": meter.wru,
        "index_wru": meter.index_wru,
        "units_by_operation_and_item": {k: v for k, v in sorted(meter.units_by.items()) if v},
        "rru": meter.rru,
        "sqs_requests": meter.sqs_requests,
        "invocations": dict(invoke.count),
        "cpu_s": invoke.cpu,
        "io_wait_s": {"api": sum(api_wait.values()), "sender": sum(sender_wait.values())},
        "stored_bytes": stored,
    }


def _uncounted(service: str) -> Any:
    import boto3

    return boto3.session.Session(region_name=REGION).client(service)


def _stored_bytes(table: str) -> int:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table(table)
    total = 0
    for item in backend.all_items():
        attrs = json.loads(json.dumps(item.to_json()["Attributes"], default=str))
        total += item_size(attrs) + 100  # DynamoDB adds 100 bytes of overhead per stored item
    return total


# -- pricing ------------------------------------------------------------------------------------
def price(run: dict[str, Any]) -> dict[str, float]:
    """Dollars for the run's RECIPIENTS emails, by line."""
    p = PRICES
    gb_s = 0.0
    for name in ("api", "sender"):
        gb_s += run["cpu_s"][name] * FULL_VCPU_MB / 1024  # CPU-bound: memory-independent below 1 vCPU
        gb_s += run["io_wait_s"][name] * MEMORY_MB[name] / 1024
    lines = {
        "dynamodb_writes": run["wru"] * p["dynamodb_wru"],
        "dynamodb_reads": run["rru"] * p["dynamodb_rru"],
        "dynamodb_storage_1_month": run["stored_bytes"] / 1e9 * p["dynamodb_gb_month"],
        "sqs": run["sqs_requests"] * p["sqs_request"],
        "lambda_requests": sum(run["invocations"].values()) * p["lambda_request"],
        "lambda_duration": gb_s * p["lambda_gb_second_arm64"],
        "api_gateway": run["invocations"]["api"] * p["apigw_rest_request"],
    }
    return {k: v * 1000 / RECIPIENTS for k, v in lines.items()}  # per 1,000 emails


def naive(run: dict[str, Any]) -> dict[str, float]:
    """The naive design, per the issue: one queue message, one write and one invocation per
    recipient, priced with the same table. Per recipient: SendMessage + ReceiveMessage +
    DeleteMessage (event source batch size 1), one write of a <= 1 KB item, one Lambda invocation
    paying the same measured sender CPU per recipient (at least the 1 ms billing granularity) and
    the modelled wait of one DynamoDB write and one SES call. The API side is the same as the
    measured design's (one request per batch), so only the sending side differs."""
    p = PRICES
    per_recipient_cpu = max(0.001, run["cpu_s"]["sender"] / RECIPIENTS)
    per_recipient_wait = LATENCY_S["dynamodb"] + LATENCY_S["sesv2"]
    gb_s = per_recipient_cpu * FULL_VCPU_MB / 1024 + per_recipient_wait * MEMORY_MB["sender"] / 1024
    n = 1000
    return {
        "dynamodb_writes": n * 1 * p["dynamodb_wru"],
        "sqs": n * 3 * p["sqs_request"],
        "lambda_requests": n * p["lambda_request"],
        "lambda_duration": n * gb_s * p["lambda_gb_second_arm64"],
        "api_gateway": run["invocations"]["api"] * p["apigw_rest_request"] * 1000 / RECIPIENTS,
    }


def run() -> list[Figure]:
    runs = []
    for i in range(RUNS):
        start = time.perf_counter()
        runs.append(run_once())
        log(
            f"cost run {i + 1}: {time.perf_counter() - start:.1f}s, {sum(runs[-1]['calls'].values())} AWS calls"
        )
    totals = [sum(price(r).values()) for r in runs]
    mid = runs[totals.index(sorted(totals)[len(totals) // 2])]  # the median run, for the breakdown
    details = _details(mid, totals)
    total, naive_total = details["usd_per_1000_total"], details["naive_usd_per_1000_total"]
    per_recipient = details["per_recipient"]
    return [
        Figure(
            key="cost_pct_of_ses",
            name="Infra cost per 1,000 emails, % of SES $0.10",
            value=100 * total / SES_PER_1000,
            unit="%",
            target=1.5,
            op="<=",
            runs=[100 * t / SES_PER_1000 for t in totals],
            details=details,
            note=f"${total:.5f}/1000 vs naive ${naive_total:.5f} ({100 * naive_total / SES_PER_1000:.1f}%)",
        ),
        Figure(
            key="cost_wru_per_recipient",
            name="DynamoDB write units per recipient",
            value=per_recipient["dynamodb_wru"],
            unit="WRU",
            target=2.0,
            op="<=",
            runs=[r["wru"] / RECIPIENTS for r in runs],
            note=f"naive 1.0; reads {per_recipient['dynamodb_rru']:.2f} RRU/recipient",
        ),
        Figure(
            key="cost_sqs_per_recipient",
            name="SQS requests per recipient",
            value=per_recipient["sqs_requests"],
            unit="requests",
            target=0.1,
            op="<",
            runs=[r["sqs_requests"] / RECIPIENTS for r in runs],
            note="naive 3.0",
        ),
    ]


def _details(mid: dict[str, Any], totals: list[float]) -> dict[str, Any]:
    """The median run priced line by line, against the naive design, with what the prices assume."""
    lines, naive_lines = price(mid), naive(mid)
    naive_total = sum(naive_lines.values())
    cpu_gb_s = sum(mid["cpu_s"].values()) * FULL_VCPU_MB / 1024
    cpu_usd = cpu_gb_s * PRICES["lambda_gb_second_arm64"] * 1000 / RECIPIENTS
    return {
        "recipients": RECIPIENTS,
        "usd_per_1000": lines,
        "usd_per_1000_total": sum(lines.values()),
        "naive_usd_per_1000": naive_lines,
        "naive_usd_per_1000_total": naive_total,
        "naive_pct_of_ses": 100 * naive_total / SES_PER_1000,
        "per_recipient": {
            "dynamodb_wru": mid["wru"] / RECIPIENTS,
            "dynamodb_rru": mid["rru"] / RECIPIENTS,
            "sqs_requests": mid["sqs_requests"] / RECIPIENTS,
        },
        "median_run": mid,
        "prices": PRICES,
        "price_source": PRICE_SOURCE,
        "latency_model_s": LATENCY_S,
        "memory_mb": MEMORY_MB,
        "runs_usd_per_1000": totals,
        "lambda_duration_usd_per_1000_cpu_only": cpu_usd,
    }

"""The two metered workloads of the cost figure, through the real handlers under moto, in-process.

- A batch: one `/api/v1/emails/batch` of RECIPIENTS, the send queue pumped through the sender the
  way the event source mapping does (ReceiveMessage of up to its batch size, one invocation,
  DeleteMessageBatch of the successes).
- Single sends: one `/api/v1/emails/send` each, its chunk taken from the priority queue on its own
  (transactional traffic arrives spread out: one record per sender invocation).
Then the SES events path of both: one Delivery notification per recipient (the configuration set
subscribes only the types the events function acts on), published by SES to SNS and delivered
raw to the events queue (one SNS publish and one SQS SendMessage each), consumed by the real
events handler in the groups the events queue's event source forms (`events_per_invocation`).
"""

from __future__ import annotations

import copy
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ROOT, batch_body
from bench.cost_meter import Invocations, Meter, metered_moto, stored_bytes, uncounted
from bench.prices import LATENCY_S, REGION, SES_RATE, paced_wait, traced_fraction

SENDER_BATCH_SIZE = 5  # infra/capabilities.py SENDER_BATCH_SIZE
EVENTS_BATCH_SIZE = 10  # infra/capabilities.py EVENTS_BATCH_SIZE
EVENTS_BATCHING_WINDOW_S = 10.0  # infra/capabilities.py EVENTS_BATCHING_WINDOW
LOG_LEVEL = "INFO"  # cdk.json log_level, the deployed default
SINGLE_SENDS_PER_S = 1.0  # the single-send workload's arrival rate (a busy transactional stream)
_FUNCTIONS = ("api", "sender", "events")


def events_per_invocation(arrivals_per_s: float, window_s: float = EVENTS_BATCHING_WINDOW_S) -> int:
    """Records the events queue's event source hands one invocation: without a batching window it
    invokes as soon as a long poll returns anything, so about one record per invocation at these
    rates; with one, what arrives within the window, up to the batch size."""
    return max(1, min(EVENTS_BATCH_SIZE, int(arrivals_per_s * window_s)))


def _queue(sqs: Any, name: str) -> str:
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 8})
    return str(
        sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": "720"})[
            "QueueUrl"
        ]
    )


def _resources(suffix: str) -> dict[str, str]:
    """Table, queues and the SES identity, created with clients the meter never sees."""
    from mailsage.adapters.aws.table import create_table_kwargs

    table = f"bench-{suffix}"
    uncounted("dynamodb").create_table(**create_table_kwargs(table))
    sqs = uncounted("sqs")
    uncounted("sesv2").create_email_identity(EmailIdentity="mailsage.example")
    return {
        "MAILSAGE_BACKEND": "aws",
        "MAILSAGE_TABLE_NAME": table,
        "MAILSAGE_SEND_QUEUE_URL": _queue(sqs, f"send-{suffix}"),
        "MAILSAGE_PRIORITY_QUEUE_URL": _queue(sqs, f"priority-{suffix}"),
        "MAILSAGE_WEBHOOK_QUEUE_URL": _queue(sqs, f"webhooks-{suffix}"),
        "BENCH_EVENTS_QUEUE_URL": _queue(sqs, f"events-{suffix}"),  # the bench's own: what SNS delivers to
        "MAILSAGE_DEFAULT_FROM": "MailSage <noreply@mailsage.example>",
        "MAILSAGE_SES_MAX_RATE": f"{SES_RATE:g}",  # moto has no GetAccount
        "POWERTOOLS_LOG_LEVEL": LOG_LEVEL,
    }


def _register_key(table: str, suffix: str) -> str:
    from mailsage.adapters.aws.dynamodb import DynamoStore
    from mailsage.domain.auth import AuthService

    key = "bench-" + suffix
    AuthService(DynamoStore(table, client=uncounted("dynamodb"))).register_key(str(uuid.uuid4()), key)
    return key


def _post(key: str, path: str, body: dict[str, Any], api: Any, invoke: Invocations) -> dict[str, Any]:
    from mailsage.local.events import api_gateway_event

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    reply = invoke("api", api, api_gateway_event("POST", path, headers, json.dumps(body).encode()))
    if reply["statusCode"] not in (200, 202):
        raise RuntimeError(f"{path} not accepted: {reply['statusCode']} {reply['body'][:300]}")
    return json.loads(reply["body"])  # type: ignore[no-any-return]


def drain(queue_url: str, per_invocation: int, name: str, handler: Any, invoke: Invocations) -> None:
    """The event source mapping: receive a batch, invoke the function, delete what succeeded."""
    import boto3

    from mailsage.local.events import sqs_event
    from mailsage.ports import Received

    esm = boto3.client("sqs")  # counted: these requests are billed to the account too
    while True:
        messages = esm.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=per_invocation,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        if not messages:
            return
        received = [
            Received(
                m["ReceiptHandle"],
                json.loads(m["Body"]),
                int(m["Attributes"]["ApproximateReceiveCount"]),
                m["MessageId"],
            )
            for m in messages
        ]
        result = invoke(name, handler, sqs_event(received))
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        if failed:
            raise RuntimeError(f"{name} reported failures: {failed}")
        esm.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


_DELIVERY = json.loads(
    json.loads((Path(ROOT) / "events" / "ses_delivery.json").read_text())["Records"][0]["body"]
)


def delivery_notification(sent: dict[str, Any]) -> dict[str, Any]:
    """SES's Delivery event for one send (events/ses_delivery.json with this send's ids and tags)."""
    body = copy.deepcopy(_DELIVERY)
    to = sent["to"]
    body["mail"]["messageId"] = sent["ses_message_id"]
    body["mail"]["destination"] = [to]
    body["mail"]["commonHeaders"]["to"] = [to]
    body["mail"]["tags"].update({k: [v] for k, v in sent["tags"].items()})
    body["delivery"]["recipients"] = [to]
    return body


def events_path(meter: Meter, per_invocation: int, events: Any, invoke: Invocations) -> int:
    """Every accepted send's Delivery notification onto the events queue as SNS delivers it (the
    publish is counted by the caller), then the queue drained through the events handler in groups
    of `per_invocation`. Done in rounds of 100: moto's SQS slows as a queue fills."""
    import boto3

    sqs, url = boto3.client("sqs"), os.environ["BENCH_EVENTS_QUEUE_URL"]
    sent = list(meter.sent)
    for start in range(0, len(sent), 100):
        for one in sent[start : start + 100]:
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(delivery_notification(one)))
        drain(url, per_invocation, "events", events, invoke)
    return len(sent)


def _batch(key: str, handlers: dict[str, Any], invoke: Invocations, recipients: int) -> None:
    reply = _post(key, "/api/v1/emails/batch", batch_body(0, recipients, text=True), handlers["api"], invoke)
    if reply["accepted"] != recipients:
        raise RuntimeError(f"batch: {reply['accepted']} of {recipients} accepted")
    drain(os.environ["MAILSAGE_SEND_QUEUE_URL"], SENDER_BATCH_SIZE, "sender", handlers["sender"], invoke)


def _singles(key: str, handlers: dict[str, Any], invoke: Invocations, count: int) -> None:
    body = batch_body(0, 1, text=True)
    for i in range(count):
        one = {**{k: body[k] for k in ("subject", "html", "body")}, "recipient": body["recipients"][0]}
        one["recipient"] = {**one["recipient"], "email": f"user{i}@example.com"}
        _post(key, "/api/v1/emails/send", one, handlers["api"], invoke)
        drain(os.environ["MAILSAGE_PRIORITY_QUEUE_URL"], 1, "sender", handlers["sender"], invoke)


def run_once(
    kind: str, emails: int, events_window_s: float = EVENTS_BATCHING_WINDOW_S, log_level: str = LOG_LEVEL
) -> dict[str, Any]:
    """One metered run: `kind` "batch" (one batch of `emails`) or "singles" (`emails` single sends).
    The events queue's batching window and the log level can be varied to measure them."""
    suffix = uuid.uuid4().hex[:8]
    meter = Meter(f"bench-{suffix}")
    invoke = Invocations(meter, log_level)
    saved = dict(os.environ)
    os.environ.update({"AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"})
    try:
        with metered_moto(meter):
            os.environ.update({**_resources(suffix), "POWERTOOLS_LOG_LEVEL": log_level})
            from mailsage.local.functions import load_handler

            key = _register_key(meter.table, suffix)
            handlers = {name: load_handler(name) for name in _FUNCTIONS}
            workload: Callable[..., None] = _batch if kind == "batch" else _singles
            workload(key, handlers, invoke, emails)
            if len(meter.sent) != emails:
                raise RuntimeError(f"{len(meter.sent)} SES sends for {emails} emails")
            arrivals = SES_RATE if kind == "batch" else SINGLE_SENDS_PER_S
            publishes = events_path(
                meter, events_per_invocation(arrivals, events_window_s), handlers["events"], invoke
            )
            stored = stored_bytes(meter.table)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return _record(kind, emails, meter, invoke, publishes, stored)


def _record(
    kind: str, emails: int, meter: Meter, invoke: Invocations, publishes: int, stored: int
) -> dict[str, Any]:
    invocations = dict(invoke.count)
    sender_busy = invoke.cpu["sender"] + invoke.wait["sender"]
    # Traces: api requests and events invocations are roots; a sender invocation continues the
    # api's trace (its records carry the trace header). Sampled at the rate they arrive.
    duration = emails / (SES_RATE if kind == "batch" else SINGLE_SENDS_PER_S)
    roots = invocations["api"] + invocations.get("events", 0)
    return {
        "kind": kind,
        "emails": emails,
        "calls": dict(sorted(meter.calls.items())),
        "wru": meter.wru,
        "index_wru": meter.index_wru,
        "units_by_operation_and_item": {k: v for k, v in sorted(meter.units_by.items()) if v},
        "rru": meter.rru,
        "sqs_requests": meter.sqs_requests,
        "sns_publishes": publishes,
        "api_requests": invocations["api"],
        "invocations": invocations,
        "cpu_s": dict(invoke.cpu),
        "io_wait_s": dict(invoke.wait),
        "paced_wait_s": paced_wait(emails, sender_busy) if kind == "batch" else 0.0,
        "log_bytes": invoke.log_bytes,
        "emf_lines": len(invoke.stream.emf),
        "custom_metrics": sorted(_metric_names(invoke.stream.emf)),
        "traces": roots * traced_fraction(roots / duration),
        "stored_bytes": stored,
        "latency_model_s": LATENCY_S,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _metric_names(lines: list[str]) -> set[str]:
    """Distinct custom metrics (namespace, name, dimension set) in the EMF lines written."""
    found = set()
    for line in lines:
        aws = json.loads(line)["_aws"]
        for directive in aws["CloudWatchMetrics"]:
            for dims in directive["Dimensions"] or [[]]:
                for metric in directive["Metrics"]:
                    found.add(f"{directive['Namespace']}/{metric['Name']}[{','.join(dims)}]")
    return found

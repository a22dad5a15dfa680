"""What the cost figure assumes of the deployed stack (bench/cost_runs.py, bench/prices.py)."""

from __future__ import annotations

from typing import Any

from bench import cost_runs
from infra import capabilities
from tests.infra.conftest import Synthesized
from tests.infra.test_stack import environment


def mapping_of(synthesized: Synthesized, queue_env: str, function: str) -> dict[str, Any]:
    queue = environment(synthesized, function)[queue_env]["Ref"]
    (mapping,) = [
        m["Properties"]
        for m in synthesized.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]}
    ]
    return mapping


def events_mapping(synthesized: Synthesized) -> dict[str, Any]:
    """The events function's one event source: the events queue (SES notifications)."""
    (function_id,) = [
        k
        for k, v in synthesized.resources("AWS::Lambda::Function").items()
        if v["Properties"]["Environment"]["Variables"].get("POWERTOOLS_SERVICE_NAME") == "mailsage-events"
    ]
    (mapping,) = [
        m["Properties"]
        for m in synthesized.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    return mapping


def test_delivery_notifications_gather_in_a_batching_window_of_full_batches(synthesized: Synthesized) -> None:
    # Given the default stack
    # When the events function's event source is read
    mapping = events_mapping(synthesized)
    # Then records gather for the window the bench prices, up to a batch of ten
    assert mapping["MaximumBatchingWindowInSeconds"] == cost_runs.EVENTS_BATCHING_WINDOW_S == 10
    assert mapping["BatchSize"] == cost_runs.EVENTS_BATCH_SIZE == capabilities.EVENTS_BATCH_SIZE


def test_only_the_events_queue_waits_to_fill_a_batch(synthesized: Synthesized) -> None:
    # Given every event source of the stack
    mappings = synthesized.resources("AWS::Lambda::EventSourceMapping").values()
    # When their batching windows are read
    windows = sorted(m["Properties"].get("MaximumBatchingWindowInSeconds", 0) for m in mappings)
    # Then sends, ingest and webhooks are not delayed: only the events function's source has one
    assert windows == [0, 0, 0, 0, 10]


def test_the_bench_prices_the_deployed_sender_batch_size(synthesized: Synthesized) -> None:
    # Given the send queue's event source
    mapping = mapping_of(synthesized, "MAILSAGE_SEND_QUEUE_URL", "sender")
    # Then the bench's event source model receives as many chunks per invocation
    assert mapping["BatchSize"] == cost_runs.SENDER_BATCH_SIZE

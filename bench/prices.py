"""List prices and the models that turn a metered run into dollars, line by line.

No network here: every price is from memory (AWS list prices, us-east-1, as known 2024-11, after
the 2024-11-01 DynamoDB on-demand cut), no free tier. Check https://aws.amazon.com/<service>/pricing/.
Quantities the bench cannot observe under moto are modelled, each with its assumption beside it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

REGION = "us-east-1"
SES_PER_1000 = 0.10
PRICE_SOURCE = "AWS list prices as known 2024-11 (from memory, not fetched), us-east-1, no free tier"
PRICES: dict[str, float] = {
    "dynamodb_wru": 0.625 / 1e6,  # on-demand, per write request unit
    "dynamodb_rru": 0.125 / 1e6,  # on-demand, per read request unit
    "dynamodb_gb_month": 0.25,  # standard table class storage
    "sqs_request": 0.40 / 1e6,  # standard queue, per request (64 KB chunk)
    "sns_publish": 0.50 / 1e6,  # per publish (64 KB chunk); delivery to SQS is free
    # The opt-in destination (ses_event_destination "eventbridge"): events AWS services put on the
    # default bus, and a rule's delivery to SQS, are not charged (from memory; AWS's pricing page was
    # not available offline). Its SendMessage is an SQS request, as SNS's delivery is.
    "eventbridge_aws_service_event": 0.0,
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second_arm64": 0.0000133334,
    "apigw_rest_request": 3.50 / 1e6,  # first 333 M requests/month
    "apigw_http_request": 1.00 / 1e6,  # first 300 M requests/month (an alternative, not deployed)
    "logs_ingested_gb": 0.50,  # CloudWatch Logs, standard class
    "logs_stored_gb_month": 0.03,
    "xray_trace_recorded": 5.00 / 1e6,  # traces retrieved/scanned ($0.50/M) only when someone looks
    "alarm_month": 0.10,  # standard-resolution metric alarm, per metric it watches
    "dashboard_month": 3.00,
    "custom_metric_month": 0.30,  # first 10,000 metrics
    "secret_month": 0.40,
    "kms_key_month": 1.00,
    "scheduler_invocation": 1.00 / 1e6,  # EventBridge Scheduler, after 14 M free a month
    "ses_per_1000": SES_PER_1000,  # reference only: excluded from the infrastructure figure
}

# The deployment the bench prices (infra/constructs/functions.py, infra/capabilities.py).
MEMORY_MB = {"api": 1024, "sender": 512, "ingest": 1024, "events": 512, "webhooks": 512}
FULL_VCPU_MB = 1769  # Lambda allocates CPU in proportion to memory; one full vCPU at 1,769 MB
SES_RATE = 14.0  # a new production account's SES rate (messages/s); the bench paces to it

# Modelled in-region latency of one call, seconds (an assumption: Lambda pays wall time while it
# waits). Batched and parallel calls are counted as if sequential: an upper bound.
LATENCY_S = {"dynamodb": 0.005, "sqs": 0.008, "sesv2": 0.030}

# Log lines the bench cannot see, per invocation or request (from memory of the JSON log format):
PLATFORM_LOG_BYTES = 650  # platform.start + platform.report (with its X-Ray fields), JSON format
EMF_LOG_BYTES = 600  # one Powertools metrics (EMF) line per invocation
ACCESS_LOG_BYTES = 700  # one API Gateway access-log line per request (request ids, latencies, errors)
LOG_STORED_FRACTION = 0.15  # CloudWatch bills stored logs compressed: JSON compresses ~6-7x

# X-Ray as deployed (infra/constructs/tracing.py): API Gateway samples by the stack's own rule,
# cdk.json's `trace_sample_rate` with no reservoir, and every function is in PassThrough mode: the
# sender continues a sampled api trace (no trace of its own), SES events arrive with no trace
# header and are never traced. So traces = api requests x the rate.
TRACE_SAMPLE_RATE = float(
    json.loads((Path(__file__).resolve().parents[1] / "cdk.json").read_text())["context"]["trace_sample_rate"]
)
# The design before it, kept as the alternative `xray_lambda_default` (the run's "traces"): Lambda's
# active tracing samples with the default rule, a reservoir of 1 request/s and 5% of the rest (not
# configurable for Lambda itself); an invocation with no sampled upstream (an API Gateway request,
# an SQS batch whose records carry no trace header) is a trace of its own.
XRAY_RESERVOIR_PER_S, XRAY_RATE = 1.0, 0.05

# Idle event source mappings: Lambda long-polls each SQS queue with about 5 pollers, each a
# 20 s ReceiveMessage, so ~3 requests a minute each (an assumption from AWS's own estimates).
ESM_IDLE_POLLERS, ESM_IDLE_REQUESTS_PER_MIN = 5, 3
MONTH_S = 30 * 24 * 3600


def traced_fraction(roots_per_s: float) -> float:
    """Share of root invocations the default sampling rule records at a steady `roots_per_s`."""
    if roots_per_s <= XRAY_RESERVOIR_PER_S:
        return 1.0
    return (XRAY_RESERVOIR_PER_S + XRAY_RATE * (roots_per_s - XRAY_RESERVOIR_PER_S)) / roots_per_s


def sampled_traces(run: dict[str, Any], rate: float = TRACE_SAMPLE_RATE) -> float:
    """Traces the deployed sampling records: a share `rate` of api requests, nothing else rooted."""
    return float(run["api_requests"]) * rate


def lambda_gb_seconds(cpu_s: dict[str, float], wait_s: dict[str, float]) -> float:
    """CPU-bound time is memory-independent below one vCPU (GB-s = CPU s x 1,769 MB); waiting is
    paid at the function's memory."""
    gb_s = sum(cpu * FULL_VCPU_MB / 1024 for cpu in cpu_s.values())
    return gb_s + sum(wait * MEMORY_MB[name] / 1024 for name, wait in wait_s.items())


def log_bytes(run: dict[str, Any]) -> float:
    """All bytes the run writes to CloudWatch Logs: measured handler lines plus modelled lines."""
    invocations = sum(run["invocations"].values())
    measured = sum(run["log_bytes"].values())
    modelled = invocations * (PLATFORM_LOG_BYTES + EMF_LOG_BYTES) + run["api_requests"] * ACCESS_LOG_BYTES
    return float(measured + modelled)


def price(run: dict[str, Any], emails: int) -> dict[str, float]:
    """Dollars per 1,000 emails of a metered run, by line."""
    p = PRICES
    paced = {"sender": run["paced_wait_s"]} if run["paced_wait_s"] else {}
    lines = {
        "dynamodb_writes": run["wru"] * p["dynamodb_wru"],
        "dynamodb_reads": run["rru"] * p["dynamodb_rru"],
        "dynamodb_storage_1_month": run["stored_bytes"] / 1e9 * p["dynamodb_gb_month"],
        "sqs": run["sqs_requests"] * p["sqs_request"],
        "sns": run["sns_publishes"] * p["sns_publish"],
        "lambda_requests": sum(run["invocations"].values()) * p["lambda_request"],
        "lambda_duration": lambda_gb_seconds(run["cpu_s"], run["io_wait_s"]) * p["lambda_gb_second_arm64"],
        "lambda_paced_wait": lambda_gb_seconds({}, paced) * p["lambda_gb_second_arm64"],
        "api_gateway_rest": run["api_requests"] * p["apigw_rest_request"],
        "cloudwatch_logs": log_bytes(run)
        / 1e9
        * (p["logs_ingested_gb"] + LOG_STORED_FRACTION * p["logs_stored_gb_month"]),
        "xray": sampled_traces(run) * p["xray_trace_recorded"],
    }
    return {k: v * 1000 / emails for k, v in lines.items()}


def http_api_saving(run: dict[str, Any], emails: int) -> float:
    """Dollars per 1,000 emails an HTTP API would save over the REST API (same requests)."""
    return run["api_requests"] * (PRICES["apigw_rest_request"] - PRICES["apigw_http_request"]) * 1000 / emails


def alternatives(run: dict[str, Any], emails: int) -> dict[str, float]:
    """The run's total per 1,000 emails under designs not deployed, each one change apart:
    - http_api: API Gateway HTTP API instead of REST (no usage plans; WAF only through CloudFront);
    - xray_lambda_default: every function in active tracing, sampled by Lambda's fixed default
      rule (1/s + 5%), the design before the API's own sampling rule;
    - sender_1024mb: the sender at 1,024 MB, as before it moved to 512: its waiting costs double;
    - eventbridge_destination: SES events through EventBridge's default bus instead of the SNS
      topic (the stack's opt-in): no publish per event, the same SQS requests; best effort."""
    base = price(run, emails)
    total = sum(base.values())
    traces = run["traces"] * PRICES["xray_trace_recorded"] * 1000 / emails
    wait = run["io_wait_s"].get("sender", 0.0) + run["paced_wait_s"]
    sender_at_1024 = (
        wait * (1024 - MEMORY_MB["sender"]) / 1024 * PRICES["lambda_gb_second_arm64"] * 1000 / emails
    )
    return {
        "http_api": total - http_api_saving(run, emails),
        "xray_lambda_default": total - base["xray"] + traces,
        "sender_1024mb": total + sender_at_1024,
        "eventbridge_destination": total
        - base["sns"]
        + run["sns_publishes"] * PRICES["eventbridge_aws_service_event"] * 1000 / emails,
    }


def paced_wait(messages: int, busy_s: float, rate: float = SES_RATE) -> float:
    """Seconds a sender waits for pacing grants beyond its own work: sending `messages` at `rate`
    takes messages / rate, of which `busy_s` is spent working. A lower bound: several senders
    waiting on the same grants each pay their wait."""
    return max(0.0, messages / rate - busy_s)


def fixed_monthly(counts: dict[str, int]) -> dict[str, float]:
    """Dollars a month of an idle deployment, by line, from the synthesized template's counts."""
    p = PRICES
    idle_polls = counts["event_source_mappings"] * ESM_IDLE_POLLERS * ESM_IDLE_REQUESTS_PER_MIN * MONTH_S / 60
    return {
        "alarms": counts["alarm_metrics"] * p["alarm_month"],
        "dashboard": counts["dashboards"] * p["dashboard_month"],
        "secrets": counts["secrets"] * p["secret_month"],
        "kms_keys": counts["kms_keys"] * p["kms_key_month"],
        "sqs_idle_polling": idle_polls * p["sqs_request"],
        "custom_metrics": counts["custom_metrics"] * p["custom_metric_month"],
        # Schedules fire only for scheduled jobs (priced with them); no recurring schedule exists.
        "scheduler": counts["recurring_schedules"] * 30 * 24 * p["scheduler_invocation"],
    }


def break_even(fixed_usd_month: float, usd_per_1000: float) -> int:
    """Emails a month above which the fixed cost is less than the per-email cost of sending them."""
    return math.ceil(fixed_usd_month / usd_per_1000 * 1000) if usd_per_1000 > 0 else 0

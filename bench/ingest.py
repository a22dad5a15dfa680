"""Figure 1 — ingest rate: recipients accepted per second by the real `functions/api` handler,
in-process on the embedded backend (SQLite in a temporary data directory), one thread.

Each request is a 100-recipient batch with the ~2 KB HTML template and 5 variables per recipient,
shaped as API Gateway would deliver it (built before the clock starts). Timed: only the handler
call (routing, validation, authentication, pre-render, SQLite writes, enqueue, reply)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Figure, batch_body, log, median

BATCH = 100
BATCHES_PER_RUN = 30  # 3,000 recipients a run
RUNS = 5
WARMUP_BATCHES = 3


class InProcessApi:
    """The api handler loaded the way Lambda loads it, on a fresh data directory."""

    def __init__(self, data_dir: Path) -> None:
        os.environ["MAILSAGE_DATA_DIR"] = str(data_dir)
        # One account submits back to back, far past the per-account request limit (20/s by default).
        os.environ["MAILSAGE_ACCOUNT_RATE_LIMIT"] = os.environ["MAILSAGE_ACCOUNT_RATE_BURST"] = "100000"
        from mailsage.domain.auth import AuthService
        from mailsage.local.functions import LocalContext, load_handler
        from mailsage.settings import ApiSettings
        from mailsage.wiring import backends

        self.key = "bench-key-ingest"
        AuthService(backends(ApiSettings()).store).register_key(
            "6f1c2b7e-3f4a-4b8e-9c1d-2a3b4c5d6e7f", self.key
        )
        self.handler = load_handler("api")
        self.context = LocalContext("mailsage-api")

    def event(self, body: dict[str, Any]) -> dict[str, Any]:
        from mailsage.local.events import api_gateway_event

        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        return api_gateway_event("POST", "/api/v1/emails/batch", headers, json.dumps(body).encode())

    def call(self, event: dict[str, Any]) -> dict[str, Any]:
        return dict(self.handler.lambda_handler(event, self.context))


def accepted(result: dict[str, Any]) -> int:
    if result["statusCode"] != 202:
        raise RuntimeError(f"batch refused: {result['statusCode']} {result.get('body', '')[:300]}")
    return int(json.loads(result["body"])["accepted"])


def run() -> Figure:
    saved = {k: v for k, v in os.environ.items() if k.startswith("MAILSAGE_")}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        try:
            api = InProcessApi(Path(tmp) / "data")
            next_index = 0

            def events(n: int) -> list[dict[str, Any]]:
                nonlocal next_index
                out = [api.event(batch_body(next_index + i * BATCH, BATCH)) for i in range(n)]
                next_index += n * BATCH
                return out

            for event in events(WARMUP_BATCHES):
                accepted(api.call(event))
            rates, cpu_rates = [], []
            for _ in range(RUNS):
                prepared = events(BATCHES_PER_RUN)
                wall, cpu = time.perf_counter(), time.process_time()
                total = sum(accepted(api.call(event)) for event in prepared)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                rates.append(total / wall)
                cpu_rates.append(total / cpu)
            log(f"ingest: {', '.join(f'{r:,.0f}' for r in rates)} recipients/s")
        finally:
            for name in [k for k in os.environ if k.startswith("MAILSAGE_")]:
                del os.environ[name]
            os.environ.update(saved)
    return Figure(
        key="ingest",
        name="Ingest rate (api handler, SQLite, 1 thread)",
        value=median(rates),
        unit="recipients/s",
        target=5000,
        op=">=",
        runs=rates,
        details={
            "batch_recipients": BATCH,
            "batches_per_run": BATCHES_PER_RUN,
            "template_bytes": len(batch_body(0, 1)["html"].encode()),
            "variables_per_recipient": 5,
            "recipients_per_cpu_second_median": median(cpu_rates),
        },
    )

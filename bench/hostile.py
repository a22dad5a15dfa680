"""Figure 6 — hostile templates: what the worst template of the corpus (tests/security/
hostile_templates.py) can cost, and whether the server stays responsive while they arrive.

- Render cost, in this process: each template compiled and rendered (compile cache cleared) with the
  variables that make it hostile, RUNS times; the worst wall time and CPU time (thread CPU clock),
  and the peak of Python allocations (tracemalloc, one more run) over the corpus. Targets: no
  render over 1 s of CPU or 64 MB.
- Responsiveness: a real `mailsage serve`; 4 clients submit the corpus over and over as v1 sends
  (the template in the request, the variables in the recipient) for SECONDS, while a fifth client
  calls GET /v2/ping every PING_EVERY_S. Figure: the pings' p99 latency. Target: under 250 ms.
  It depends on how the local HTTP server runs API handlers concurrently (mailsage.local.http:
  16 slots, a 1 ms GIL switch interval) and on the render budget (the domain/sandbox/ package).
"""

from __future__ import annotations

import http.client
import json
import statistics
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.common import Figure, Server, log

RUNS = 2
CLIENTS = 4
SECONDS = 30
PING_EVERY_S = 0.02


def _render_once(html: str, variables: dict[str, Any]) -> str:
    from mailsage.domain import rendering
    from mailsage.errors import TemplateError

    rendering._compiled.cache_clear()  # compiling is part of the cost (constant folding)
    try:
        rendering.CompiledContent("s", None, html).render(variables)
    except TemplateError as exc:
        return str(exc.details.get("limit", "template_error") if isinstance(exc.details, dict) else exc.code)
    return "rendered"


def render_costs() -> list[dict[str, Any]]:
    from tests.security.hostile_templates import CORPUS

    rows = []
    for hostile in CORPUS:
        wall, cpu = [], []
        outcome = ""
        for _ in range(RUNS):
            w, c = time.perf_counter(), time.thread_time()
            outcome = _render_once(hostile.html, hostile.variables)
            cpu.append(time.thread_time() - c)
            wall.append(time.perf_counter() - w)
        tracemalloc.start()
        try:
            _render_once(hostile.html, hostile.variables)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        rows.append(
            {
                "template": hostile.name,
                "outcome": outcome,
                "wall_s": round(max(wall), 4),
                "cpu_s": round(max(cpu), 4),
                "peak_mb": round(peak / 2**20, 2),
            }
        )
    return rows


def _client(port: int, key: str, stop: threading.Event, counts: dict[int, int]) -> None:
    from tests.security.hostile_templates import CORPUS

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    i = 0
    while not stop.is_set():
        hostile = CORPUS[i % len(CORPUS)]
        i += 1
        body = {
            "subject": "Hi",
            "html": hostile.html,
            "recipient": {"email": "r@example.com", "variables": hostile.variables},
        }
        try:
            conn.request("POST", "/api/v1/emails/send", body=json.dumps(body), headers=headers)
            response = conn.getresponse()
            response.read()
            counts[response.status] = counts.get(response.status, 0) + 1
        except (http.client.HTTPException, ConnectionError):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            counts[0] = counts.get(0, 0) + 1
    conn.close()


def ping_latencies(seconds: float = SECONDS) -> tuple[list[float], dict[int, int]]:
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp, Server(Path(tmp) / "data") as server:
        stop = threading.Event()
        counts: dict[int, int] = {}
        clients = [
            threading.Thread(target=_client, args=(server.port, server.key, stop, counts), daemon=True)
            for _ in range(CLIENTS)
        ]
        for c in clients:
            c.start()
        time.sleep(1)  # the clients are under way
        latencies = []
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t = time.perf_counter()
            conn.request("GET", "/v2/ping", headers={"Authorization": f"Bearer {server.key}"})
            conn.getresponse().read()
            latencies.append(time.perf_counter() - t)
            time.sleep(PING_EVERY_S)
        conn.close()
        stop.set()
        for c in clients:
            c.join(timeout=120)
    return latencies, counts


def run() -> list[Figure]:
    log("hostile templates: render cost of each template of the corpus")
    rows = render_costs()
    worst_cpu = max(rows, key=lambda r: r["cpu_s"])
    worst_mem = max(rows, key=lambda r: r["peak_mb"])
    for r in rows:
        log(
            f"  {r['template']:<30} {r['outcome']:<14} wall {r['wall_s']:.3f}s cpu {r['cpu_s']:.3f}s peak {r['peak_mb']:.1f} MB"
        )
    log(f"hostile templates: GET /v2/ping while {CLIENTS} clients submit the corpus for {SECONDS}s")
    latencies, counts = ping_latencies()
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    ping = {
        "pings": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "submissions_by_status": counts,
    }
    log(f"  ping {ping}")
    note = f"p50 {ping['p50_ms']} ms over {ping['pings']} pings"
    return [
        Figure(
            "hostile_render_cpu",
            f"6a. worst hostile-template render CPU ({worst_cpu['template']})",
            worst_cpu["cpu_s"],
            "s",
            1.0,
            "<=",
            details={"templates": rows},
        ),
        Figure(
            "hostile_render_memory",
            f"6b. worst hostile-template render peak ({worst_mem['template']})",
            worst_mem["peak_mb"],
            "MB",
            64,
            "<=",
        ),
        Figure(
            "hostile_ping_p99",
            "6c. /v2/ping p99 while 4 clients send the corpus",
            ping["p99_ms"],
            "ms",
            250,
            "<",
            details=ping,
            note=note,
        ),
    ]

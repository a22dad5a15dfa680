"""The metrics port on Powertools Metrics: CloudWatch embedded metric format (EMF) lines on stdout,
which Lambda's log pipeline turns into metrics of the namespace "MailSage".

Dimensions: `service` (POWERTOOLS_SERVICE_NAME, as Powertools sets it) and `function_name`, so two
stages in one account and region publish apart and each stage's alarms watch only its own sender.
Never a per-account dimension: every dimension value is a metric of its own, billed as such.
"""

from __future__ import annotations

import threading
from typing import ClassVar

from aws_lambda_powertools import Metrics

NAMESPACE = "MailSage"


class PowertoolsMeter:
    """Sums what the domain counts and publishes the totals once per invocation: one EMF line with
    one value per metric, where Powertools alone would append a value per count (and flush mid-way
    at 100 values, before the invocation's dimensions are known).

    The totals are shared by every instance in the process, as Powertools shares its metric set:
    the meter the wiring gives the delivery service and the one the handler publishes are one."""

    _totals: ClassVar[dict[tuple[str, str], float]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, namespace: str = NAMESPACE) -> None:
        self._namespace = namespace

    def count(self, name: str, value: float = 1.0, unit: str = "Count") -> None:
        with self._lock:
            self._totals[(name, unit)] = self._totals.get((name, unit), 0.0) + value

    def publish(self, function_name: str) -> None:
        """Write what was counted since the last publish; nothing when nothing was (an invocation
        that only re-queued or dropped its chunks), where Powertools' `log_metrics` would warn."""
        with self._lock:
            totals = dict(self._totals)
            self._totals.clear()
        if not totals:
            return
        metrics = Metrics(namespace=self._namespace)
        metrics.add_dimension(name="function_name", value=function_name)
        for (name, unit), value in sorted(totals.items()):
            metrics.add_metric(name=name, unit=unit, value=value)
        metrics.flush_metrics()

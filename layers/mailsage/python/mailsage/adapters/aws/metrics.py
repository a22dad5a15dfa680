"""The metrics port on Powertools Metrics: CloudWatch embedded metric format (EMF) lines on stdout,
which Lambda's log pipeline turns into metrics of the namespace "MailSage".

Dimensions: `service` (POWERTOOLS_SERVICE_NAME, as Powertools sets it) and `function_name`, so two
stages in one account and region publish apart and each stage's alarms watch only its own functions.
Never a per-account dimension: every dimension value is a metric of its own, billed as such.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from aws_lambda_powertools import Metrics

NAMESPACE = "MailSage"

Reply = TypeVar("Reply")


class PowertoolsMeter:
    """Sums what the domain counts and publishes the totals once per invocation: one EMF line with
    one value per metric, where Powertools alone would append a value per count (and flush mid-way
    at 100 values, before the invocation's dimensions are known).

    The totals are shared by every instance in the process, as Powertools shares its metric set:
    the meter the wiring gives a service and the one its handler publishes are one."""

    _totals: ClassVar[dict[tuple[str, str], float]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, namespace: str = NAMESPACE) -> None:
        self._namespace = namespace

    def count(self, name: str, value: float = 1.0, unit: str = "Count") -> None:
        if not value:
            return  # a zero alone would still write a metric line
        with self._lock:
            self._totals[(name, unit)] = self._totals.get((name, unit), 0.0) + value

    def publish(self, function_name: str) -> None:
        """Write what was counted since the last publish; nothing when nothing was (an invocation
        that only re-queued or dropped its records), where Powertools' `log_metrics` would warn."""
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

    def log_metrics(self, handler: Callable[[Any, Any], Reply]) -> Callable[[Any, Any], Reply]:
        """A Lambda handler that publishes what its invocation counted when it returns or raises
        (the decorator Powertools' own Metrics offers, over these totals)."""

        @functools.wraps(handler)
        def publishing(event: Any, context: Any) -> Reply:
            try:
                return handler(event, context)
            finally:
                self.publish(context.function_name)

        return publishing

"""The metrics port: counts the domain reports (sent, throttled, paced wait). Powertools Metrics
(CloudWatch EMF) on AWS; locally they are kept in memory and logged."""

from __future__ import annotations

from typing import Protocol


class Meter(Protocol):
    def count(self, name: str, value: float = 1.0, unit: str = "Count") -> None:
        """Add `value` to the metric `name` (units as CloudWatch names them: Count, Seconds)."""


class NoMeter:
    """Counts nothing: where no metrics are wanted (tests, tools)."""

    def count(self, name: str, value: float = 1.0, unit: str = "Count") -> None:
        return None

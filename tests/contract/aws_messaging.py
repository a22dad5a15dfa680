"""Queue and scheduler factories for the AWS adapters (SQS, EventBridge Scheduler under moto),
merged into conftest.QUEUES and conftest.SCHEDULERS."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from mailsage.ports import Queue, Scheduler

QUEUES: dict[str, Callable[[Path, Any], AbstractContextManager[Queue]]] = {}
SCHEDULERS: dict[str, Callable[[Path], AbstractContextManager[Scheduler]]] = {}

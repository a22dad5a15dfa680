"""Load a function's `handler.py` the way Lambda does, and a stand-in for the Lambda context."""

from __future__ import annotations

import importlib.util
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import mailsage

FUNCTIONS = ("api", "sender", "ingest", "events", "webhooks")


def functions_dir() -> Path:
    """`functions/` of the checkout (the package is installed in editable mode from layers/)."""
    configured = os.environ.get("MAILSAGE_FUNCTIONS_DIR")
    if configured:
        return Path(configured)
    # layers/mailsage/python/mailsage/__init__.py -> the repository root is four levels up
    return Path(mailsage.__file__).resolve().parents[4] / "functions"


def load_handler(name: str) -> ModuleType:
    """A fresh module for functions/<name>/handler.py: a cold start, reading settings from the
    environment as it is now."""
    if name not in FUNCTIONS:
        raise ValueError(f"unknown function {name!r}; expected one of {', '.join(FUNCTIONS)}")
    path = functions_dir() / name / "handler.py"
    spec = importlib.util.spec_from_file_location(f"mailsage_function_{name}_{uuid.uuid4().hex}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class LocalContext:
    """Duck-types aws_lambda_powertools.utilities.typing.LambdaContext."""

    function_name: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    # The runtime's stop: once set, no time is left, so the sender starts no further message.
    stopping: threading.Event | None = field(default=None, repr=False, compare=False)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:local:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 0 if self.stopping is not None and self.stopping.is_set() else 900_000


class HandlerPool:
    """Handler instances used one caller at a time, like Lambda execution environments: a module's
    resolver and batch processor hold per-invocation state and are not thread-safe. What every
    instance shares, Powertools' "current request" (class attributes), is kept per thread by
    mailsage.api.resolver."""

    def __init__(self, name: str, size: int) -> None:
        import queue

        self.name = name
        self._idle: queue.LifoQueue[ModuleType] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def acquire(self) -> Iterator[ModuleType]:
        import queue

        with self._slots:
            try:
                module = self._idle.get_nowait()
            except queue.Empty:
                module = load_handler(self.name)  # a cold start
            try:
                yield module
            finally:
                self._idle.put(module)

"""Store factories for the AWS adapters (DynamoDB under moto), merged into conftest.STORES."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from mailsage.ports import Store

STORES: dict[str, Callable[[Path], AbstractContextManager[Store]]] = {}

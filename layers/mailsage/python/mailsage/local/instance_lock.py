"""One server per data directory.

At start the server takes over what a killed predecessor left in flight (its claims on messages),
which is only safe if that predecessor is really gone: an exclusive lock on a file in the data
directory says so. The kernel drops the lock when its holder dies, however it dies.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from mailsage.local.private_files import private_file

LOCK_NAME = "serve.lock"


class DataDirInUse(RuntimeError):
    """Another live process serves this data directory."""


class InstanceLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        private_file(self.path)
        handle = self.path.open("r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise DataDirInUse(
                f"another mailsage server (pid {holder}) is using {self.path.parent};"
                " stop it or give this one its own --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the lock
            self._file = None

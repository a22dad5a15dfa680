"""The data directory holds bodies, variables, webhook secrets, the signing key and every message
the sink received: only its owner may read it. Directories are 0700 and files 0600, set by mode at
creation (not by umask, which is per process and would change it for every thread), and tightened
when a data directory from an older version is found looser."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
# What the runtime keeps at the top of a data directory (the SQLite files and the local secrets).
_KNOWN_FILES = ("mailsage.db", "mailsage.db-wal", "mailsage.db-shm", "dev-account.json", "signing.key")


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) 0700. An existing directory is left as it is: it may be
    anyone's (a database file named in /tmp); the data directory is tightened at start instead."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)  # umask may only remove bits from 0700


def private_file(path: Path) -> None:
    """Create `path` empty 0600 if missing (so a library opening it later keeps that mode: SQLite
    gives its -wal and -shm files the database's mode), or tighten it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        _tighten(path, FILE_MODE)


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path`, created 0600 (an existing file is made 0600 too)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), FILE_MODE)  # a file of an older version was made 0644
        f.write(data)


def tighten_data_dir(data_dir: Path) -> None:
    """At start: the data directory, its known files and the sink's outbox made private, saying so
    in the log when a data directory of an older version was readable by others."""
    private_dir(data_dir)
    tightened = _tighten(data_dir, DIR_MODE)
    for name in _KNOWN_FILES:
        tightened |= (data_dir / name).exists() and _tighten(data_dir / name, FILE_MODE)
    outbox = data_dir / "outbox"
    if outbox.is_dir() and _tighten(outbox, DIR_MODE):
        tightened = True
        for eml in outbox.iterdir():  # messages written before, all 0644
            _tighten(eml, FILE_MODE)
    if tightened:
        log.warning(
            "data directory %s was readable by other users; made it 0700 and its files 0600", data_dir
        )


def _tighten(path: Path, mode: int) -> bool:
    """chmod `path` to at most `mode` if it allows more; True if it did. Symlinks are left alone."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    current = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode) or current & ~mode == 0:
        return False
    os.chmod(path, current & mode)
    return True

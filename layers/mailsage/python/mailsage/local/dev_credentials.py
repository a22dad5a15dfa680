"""The local account and its API key, the same across restarts: kept in the private data directory
(`dev-account.json`, 0600), so scripts and a developer's shell keep working after a restart."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from mailsage.domain.auth import AuthService
from mailsage.local.private_files import private_dir, write_private

ACCOUNT_FILE = "dev-account.json"


def dev_credentials(data_dir: Path, auth: AuthService) -> tuple[str, str]:
    """MAILSAGE_DEV_ACCOUNT_ID / MAILSAGE_DEV_API_KEY when set; otherwise the account and key
    remembered in the data directory; otherwise a new account and key, remembered from now on.
    A key given in the environment is registered but not written down."""
    account_file = data_dir / ACCOUNT_FILE
    remembered = _read(account_file)
    account_id = (
        os.environ.get("MAILSAGE_DEV_ACCOUNT_ID") or remembered.get("account_id") or str(uuid.uuid4())
    )
    try:
        uuid.UUID(account_id)
    except ValueError:
        raise ValueError(f"MAILSAGE_DEV_ACCOUNT_ID is not a UUID: {account_id!r}") from None
    stored_key = remembered.get("api_key") if remembered.get("account_id") == account_id else None
    key = os.environ.get("MAILSAGE_DEV_API_KEY") or stored_key
    if key:
        auth.register_key(account_id, key)  # idempotent: the same key, hashed the same way
    else:
        key = stored_key = auth.create_key(account_id)
    private_dir(data_dir)
    record = {"account_id": account_id, **({"api_key": stored_key} if stored_key else {})}
    write_private(account_file, json.dumps(record).encode())
    return account_id, key


def remembered_key(data_dir: Path) -> str | None:
    """The API key remembered in the data directory (what the CLI uses against this server)."""
    key = _read(data_dir / ACCOUNT_FILE).get("api_key")
    return key if isinstance(key, str) and key else None


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # unreadable: start a new account rather than refuse to start
    return value if isinstance(value, dict) else {}

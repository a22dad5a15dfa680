"""`mailsage keys create|list|revoke` (and `create-key`, the older name of `keys create`): an
operator's tool, so it works on the store itself (the local database, or a deployed table with
--table-name), never through the API."""

from __future__ import annotations

import argparse
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from mailsage.cli_common import one_line_errors

REVOKE_HELP = """\
Remove a key: the API answers 401 for it from the next request on (it reads the key store on
every request, with no cache, on both runtimes). KEY takes the id `keys list` shows, or the key itself."""


def add_key_commands(sub: Any, data_dir: str) -> None:
    keys = sub.add_parser("keys", help="create, list or revoke API keys (on the store, not the API)")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a new API key for an account (a new account if none given)")
    _add_create_options(create, data_dir)
    listing = actions.add_parser(
        "list",
        help="key ids, accounts and creation times (never a key)",
        description="Key ids, accounts and creation times, oldest first; never a key nor its hash. On a"
        " deployed table this is a Scan, which reads the whole table (keys have no index).",
    )
    listing.add_argument("--account-id", type=_uuid, help="only this account's keys")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    _add_store_options(listing, data_dir)
    listing.set_defaults(run=_list)
    revoke = actions.add_parser("revoke", help="remove a key (401 from then on)", description=REVOKE_HELP)
    revoke.add_argument("key", metavar="KEY_ID", help="a key id from `keys list` (or the key itself)")
    _add_store_options(revoke, data_dir)
    revoke.set_defaults(run=_revoke)

    alias = sub.add_parser("create-key", help="the same as `keys create`")
    _add_create_options(alias, data_dir)


def _add_create_options(parser: argparse.ArgumentParser, data_dir: str) -> None:
    parser.add_argument("--account-id", type=_uuid, help="the account (a UUID); default: a new account")
    parser.add_argument(
        "--default-provider", help="also set the account's default provider (ses or a relay name)"
    )
    _add_store_options(parser, data_dir)
    parser.set_defaults(run=create_key)


def _add_store_options(parser: argparse.ArgumentParser, data_dir: str) -> None:
    parser.add_argument(
        "--table-name", help="the deployed DynamoDB table (stack output); default: the local database"
    )
    parser.add_argument("--region", help="the deployed table's region (default: the AWS CLI's)")
    parser.add_argument(
        "--data-dir", default=data_dir, help="the local database's directory (default: %(default)s)"
    )


def _store(args: argparse.Namespace) -> Any:
    if args.table_name:
        from mailsage.adapters.aws.dynamodb import DynamoStore

        if args.region:
            os.environ["AWS_DEFAULT_REGION"] = args.region
        return DynamoStore(args.table_name)
    from mailsage.settings import CommonSettings
    from mailsage.wiring import backends

    os.environ.setdefault("MAILSAGE_DATA_DIR", args.data_dir)
    return backends(CommonSettings()).store


def create_key(args: argparse.Namespace) -> int:
    """A new API key for an account, on the local database or, with --table-name, a deployed table."""
    from mailsage.domain.auth import AuthService, key_id_of
    from mailsage.domain.models import Account

    account_id = args.account_id or str(uuid.uuid4())
    store = _store(args)
    if args.default_provider:
        store.put_account(Account(account_id, default_provider=args.default_provider))
    key = AuthService(store).create_key(account_id)
    print(f"account id: {account_id}")
    print(f"API key:    {key}   (shown once: only its hash is stored)")
    print(f"key id:     {key_id_of(key)}   (what `mailsage keys revoke` takes)")
    return 0


def _list(args: argparse.Namespace) -> int:
    found = _store(args).list_api_keys(args.account_id)
    if args.json:
        rows = [
            {"key_id": k.key_id, "account_id": k.account_id, "created_at": _iso(k.created_at)} for k in found
        ]
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'KEY ID':<18}{'ACCOUNT':<38}CREATED")
    for info in found:
        print(f"{info.key_id:<18}{info.account_id:<38}{_iso(info.created_at)}")
    return 0


@one_line_errors("keys revoke")
def _revoke(args: argparse.Namespace) -> int:
    from mailsage.cli_common import CliError
    from mailsage.domain.auth import KEY_PREFIX, key_id_of

    key_id = key_id_of(args.key) if args.key.startswith(KEY_PREFIX) else args.key
    if not _store(args).delete_api_key(key_id):
        raise CliError(f"no key with id {key_id} (`mailsage keys list` shows them)")
    print(f"revoked {key_id}")
    return 0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {value!r}") from None

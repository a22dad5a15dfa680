"""`mailsage serve | invoke | dead-letters | ingest | preflight`; the API commands (send, batch,
jobs) are registered from cli_api.py, the key commands (keys, create-key) from cli_keys.py."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mailsage.cli_api import add_api_commands
from mailsage.cli_keys import add_key_commands


def _serve(args: argparse.Namespace) -> int:
    from mailsage.local.instance_lock import DataDirInUse
    from mailsage.local.ports import PortInUse
    from mailsage.local.runtime import STOP_SECONDS, LocalRuntime, RuntimeConfig

    # SIGTERM (to the process or its whole group) and Ctrl-C stop gracefully; a second one stops at
    # once. The handler only records the signal: it runs between two bytecodes of the main thread,
    # which may hold a lock that anything more would need.
    signalled: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        if signalled:
            os._exit(128 + signum)  # the sink sees its pipe close and stops by itself
        signalled.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not args.quiet:
        _console_lines("mailsage.requests")
        _console_lines("mailsage.jobs")
    runtime = LocalRuntime(
        RuntimeConfig(
            data_dir=Path(args.data_dir).resolve(),
            port=args.port,
            smtp_port=args.smtp_port,
            workers=args.workers,
            sink=not args.no_sink,
        )
    )
    try:
        account_id, key = runtime.start()
    except (DataDirInUse, PortInUse, ValueError) as exc:
        print(f"mailsage serve: {exc}", file=sys.stderr, flush=True)
        return 2
    relay = os.environ.get("MAILSAGE_SMTP_URL", "")
    print(f"MailSage is running on http://127.0.0.1:{args.port}", flush=True)
    print(f"  account id: {account_id}", flush=True)
    print(f"  API key:    {key}", flush=True)
    print(f"  data dir:   {runtime.config.data_dir}", flush=True)
    print(f"  API docs:   http://127.0.0.1:{args.port}/docs", flush=True)
    if not args.no_sink:
        print(f"  inbox:      http://127.0.0.1:{args.port}/inbox", flush=True)
    print(f"  try it:     {_try_it(args)}", flush=True)
    outbox = f" (sink outbox: {runtime.config.data_dir / 'outbox'})" if not args.no_sink else ""
    print(f"  mail goes to {relay.split('@')[-1] or 'no MAILSAGE_SMTP_URL'}{outbox}", flush=True)
    while not signalled:
        time.sleep(0.02)  # the stop begins within 20 ms of the signal: no new message starts after
    print(f"stopping: finishing the messages in hand (at most {STOP_SECONDS:.0f} s)...", flush=True)
    stuck = runtime.stop()
    print("stopped", flush=True)
    if stuck:
        # Their threads are still inside a send or a database call: leave without waiting for them
        # (the interpreter's own shutdown could block on them).
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _try_it(args: argparse.Namespace) -> str:
    """A first send from another terminal, with whatever this server's flags make it need (the CLI
    finds the dev key in the data directory)."""
    import shlex

    command = ["mailsage", "send", "--to", "you@example.com", "--subject", "Hello", "--text", "It works"]
    if args.port != 8026:
        command += ["--url", f"http://127.0.0.1:{args.port}"]
    if Path(args.data_dir).resolve() != Path(".mailsage").resolve():
        command += ["--data-dir", str(Path(args.data_dir).resolve())]
    return shlex.join(command)


def _console_lines(logger_name: str) -> None:
    """Readable lines on stdout ("12:00:01 POST /api/v1/emails/send 202 14 ms"), apart from the
    warnings on stderr."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


SAMPLE_API_KEY = "ms_sample_key_for_events"  # the key the API samples in events/ carry


def _invoke(args: argparse.Namespace) -> int:
    from mailsage.domain.auth import AuthService
    from mailsage.local.dev_credentials import dev_credentials
    from mailsage.local.functions import LocalContext, load_handler
    from mailsage.settings import ApiSettings
    from mailsage.wiring import backends

    # A scratch data directory unless one is named: the sample key and account must not land in
    # the data directory a running `mailsage serve` uses.
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="mailsage-invoke-")
    if not args.data_dir:
        print(f"data dir: {data_dir} (scratch; --data-dir to use another)", file=sys.stderr)
    os.environ["MAILSAGE_DATA_DIR"] = data_dir
    os.environ.setdefault("MAILSAGE_DEV_API_KEY", SAMPLE_API_KEY)
    dev_credentials(Path(os.environ["MAILSAGE_DATA_DIR"]), AuthService(backends(ApiSettings()).store))
    event = json.loads(Path(args.event).read_text())
    handler = load_handler(args.function)
    result = handler.lambda_handler(event, LocalContext(f"mailsage-{args.function}"))
    print(json.dumps(result, indent=2))
    return 0


def _dead_letters(args: argparse.Namespace) -> int:
    """Send-queue chunks the queue gave up on, and ingest records the ingest function rejected."""
    from mailsage.local.ingest import dead_letter_listing, local_queues
    from mailsage.settings import CommonSettings
    from mailsage.wiring import backends

    os.environ.setdefault("MAILSAGE_DATA_DIR", args.data_dir)
    local = backends(CommonSettings())
    listing = {"send": local.queue.dead_letters(), "ingest": dead_letter_listing(local_queues(local)[1])}
    print(json.dumps(listing, indent=2))
    return 0


def _ingest(args: argparse.Namespace) -> int:
    """JSON lines onto the embedded ingest queue: the running server (or the next one) takes them."""
    from mailsage.local.ingest import enqueue, local_queues, records_of
    from mailsage.settings import CommonSettings
    from mailsage.wiring import backends

    os.environ.setdefault("MAILSAGE_DATA_DIR", args.data_dir)
    try:
        with open(args.file, encoding="utf-8") as lines:
            records = records_of(lines)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"mailsage ingest: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    count = enqueue(local_queues(backends(CommonSettings()))[0], records)
    print(f"{count} records queued for ingest; `mailsage dead-letters` lists any the server rejects")
    return 0


def _preflight(args: argparse.Namespace) -> int:
    from mailsage.adapters.aws.preflight import Options, run_preflight

    options = Options(
        region=args.region,
        stage=args.stage,
        sender_identities=tuple(args.sender_identity),
        existing_identities=tuple(args.existing_identity),
        default_from=args.default_from,
        profile=args.profile,
    )
    report = run_preflight(options)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for check in report.checks:
            print(check.line())
    return 0 if report.ok else 1


def _add_preflight(sub: Any) -> None:
    preflight = sub.add_parser(
        "preflight",
        help="check (read-only) the AWS account for a first deploy and a first send",
    )
    preflight.add_argument("--region", help="default: the AWS CLI's configured region")
    preflight.add_argument("--profile", help="an AWS CLI profile (default: the usual credential chain)")
    preflight.add_argument("--stage", default="dev", help="the stage to deploy (default: %(default)s)")
    preflight.add_argument(
        "--sender-identity",
        action="append",
        default=[],
        metavar="DOMAIN_OR_ADDRESS",
        help="an identity the stack creates: sender_identities (repeatable)",
    )
    preflight.add_argument(
        "--existing-identity",
        action="append",
        default=[],
        metavar="DOMAIN_OR_ADDRESS",
        help="an identity already in SES that the stack references: existing_sender_identities (repeatable)",
    )
    preflight.add_argument("--default-from", help="the stack's default_from address")
    preflight.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    preflight.set_defaults(run=_preflight)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailsage", description="MailSage email-sending API, run locally.")
    parser.add_argument("--version", action="version", version=f"mailsage {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    data_dir = os.environ.get("MAILSAGE_DATA_DIR", ".mailsage")
    _add_serve(sub, data_dir)
    _add_local_tools(sub, data_dir)
    add_key_commands(sub, data_dir)
    add_api_commands(sub, data_dir)
    _add_preflight(sub)

    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("MAILSAGE_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    try:
        return int(args.run(args))
    except Exception as exc:
        if os.environ.get("MAILSAGE_DEBUG"):
            raise
        # One line, not a traceback: an AWS call refused or unreachable (credentials, region, a
        # wrong table name), a data directory that cannot be opened, a setting out of range.
        if type(exc).__module__.startswith("botocore"):
            message = _aws_error(exc)
        else:
            message = f"{type(exc).__name__}: {exc} (MAILSAGE_DEBUG=1 shows the traceback)"
        print(f"mailsage {args.command}: {message}", file=sys.stderr)
        return 1


def _add_serve(sub: Any, data_dir: str) -> None:
    serve = sub.add_parser("serve", help="run the API, the sender and an SMTP sink on this machine")
    serve.add_argument(
        "--data-dir", default=data_dir, help="SQLite database and outbox (default: %(default)s)"
    )
    # RuntimeConfig's defaults (not imported here: the CLI starts fast); not Mailpit's 8025/1025.
    serve.add_argument("--port", type=int, default=8026, help="HTTP port on 127.0.0.1 (default: %(default)s)")
    serve.add_argument("--smtp-port", type=int, default=1026, help="SMTP sink port (default: %(default)s)")
    serve.add_argument(
        "--workers",
        type=int,
        default=4,  # RuntimeConfig.workers (not imported here: the CLI starts fast)
        help="sender worker threads (default: %(default)s)",
    )
    serve.add_argument(
        "--no-sink",
        action="store_true",
        help="no built-in SMTP sink: mail goes to MAILSAGE_SMTP_URL (a relay of yours)",
    )
    serve.add_argument(
        "--quiet", action="store_true", help="no line per request or job milestone on the console"
    )
    serve.set_defaults(run=_serve)


def _add_local_tools(sub: Any, data_dir: str) -> None:
    invoke = sub.add_parser("invoke", help="run one handler once with a sample event")
    invoke.add_argument("function", choices=["api", "sender", "ingest", "events", "webhooks"])
    invoke.add_argument("event", help="path to an event JSON file, e.g. events/api_send.json")
    invoke.add_argument(
        "--data-dir",
        default=os.environ.get("MAILSAGE_DATA_DIR"),
        help="default: a new scratch directory (not the one `mailsage serve` uses)",
    )
    invoke.set_defaults(run=_invoke)

    dead = sub.add_parser(
        "dead-letters", help="list chunks the send queue gave up on and ingest records that were rejected"
    )
    dead.add_argument("--data-dir", default=data_dir)
    dead.set_defaults(run=_dead_letters)

    ingest = sub.add_parser("ingest", help="queue send/batch requests (JSON lines) for the ingest function")
    ingest.add_argument("file", help="one JSON request per line: a v1 send or batch body plus account_id")
    ingest.add_argument("--data-dir", default=data_dir)
    ingest.set_defaults(run=_ingest)


def _aws_error(exc: Exception) -> str:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    if code == "ResourceNotFoundException":
        return f"{exc} (check the table name, the stack output TableName, and the region: --region)"
    return str(exc)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mailsage")
    except PackageNotFoundError:  # run from the source tree without installing it (the layer)
        return "unknown (not installed)"


if __name__ == "__main__":
    sys.exit(main())

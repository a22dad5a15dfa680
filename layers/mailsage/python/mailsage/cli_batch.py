"""`mailsage batch FILE`: recipients from a CSV or JSON-lines file, submitted in pages of the API's
batch limit, each page under an Idempotency-Key derived from the file, the page size and the page
number; then the jobs followed to the end with a progress line on stderr and a summary."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from mailsage.batch_file import BadFile, BatchFile, Recipient, format_of, idempotency_key, parse
from mailsage.cli_api import content_fields
from mailsage.cli_common import CliError, add_connection, client, one_line_errors, variables
from mailsage.progress import ProgressLine, Snapshot

PAGE_SIZE = 1000  # the API's default max_batch_recipients; a server set lower says so and is followed
# Statuses of a message that left for the provider (what happened after is the provider's story).
SENT_STATUSES = ("sent", "delivered", "deferred", "bounced", "complained")
NOT_SENT_STATUSES = ("failed", "suppressed", "cancelled", "expired")
POLL_SECONDS = 0.5

DESCRIPTION = """\
Send to every recipient of FILE. CSV: a header row with an `email` column, an optional `name`
(the display name in To:, not a template variable), every other column a variable. JSON lines: {"email": ..., "name": ..., "variables": {...}} per line.
The file is checked whole first: a bad row stops the command (exit 2) before anything is sent.

Each page of recipients carries an Idempotency-Key made from the file's content, the message
options (subject, bodies, template, variables, sender, campaign), the page size and the page
number: running the same command again (after a crash, a lost connection) sends no one twice, as
long as it is within the API's idempotency window (24 hours by default, the server's
idempotency_ttl_seconds); change nothing, not even --page-size, when re-running. Exit 0 when
every accepted recipient was sent."""


@dataclass
class Submitted:
    replies: list[Any] = field(default_factory=list)
    pages: list[list[Recipient]] = field(default_factory=list)


def add_batch(sub: Any, data_dir: str) -> None:
    from mailsage.cli_api import add_content

    batch = sub.add_parser(
        "batch",
        help="send to every recipient of a CSV or JSON-lines file, and follow the jobs",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument("file", metavar="FILE", help="a .csv or .jsonl file; - reads stdin (with --format)")
    batch.add_argument("--format", choices=["csv", "jsonl"], help="default: from FILE's extension")
    add_content(batch)
    batch.add_argument(
        "--page-size",
        type=_positive,
        default=PAGE_SIZE,
        help="recipients per request, at most the server's limit (default: %(default)s)",
    )
    batch.add_argument(
        "--idempotency-key",
        metavar="BASE",
        help="the base of the pages' keys (default: from the file and the options); a new one sends again",
    )
    batch.add_argument("--no-wait", action="store_true", help="return once every page is submitted")
    add_connection(batch, data_dir)
    batch.set_defaults(run=_batch, poll_seconds=POLL_SECONDS)


@one_line_errors("batch")
def _batch(args: argparse.Namespace) -> int:
    recipients = _read(args)
    fields = content_fields(args)
    api = client(args)
    submitted = _submit(api, recipients, fields, args)
    if args.no_wait:
        return 0
    jobs = _follow(api, [reply.job_id for reply in submitted.replies], args.poll_seconds)
    return _summary(submitted, jobs)


def _read(args: argparse.Namespace) -> BatchFile:
    try:
        fmt = format_of(args.file, args.format)
        if args.file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as file:
                data = file.read()
        return parse(data, fmt)
    except BadFile as exc:
        raise CliError(f"{args.file}: {exc}", status=2) from None
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror or exc}", status=2) from None


def _submit(api: Any, recipients: BatchFile, fields: dict[str, Any], args: argparse.Namespace) -> Submitted:
    """Every page, in order. A server whose limit is below the page size refuses the first page
    whole (nothing sent) and says its limit: the pages are cut again at that size."""
    shared = variables(args.var)
    base = args.idempotency_key or recipients.key_base({**fields, "variables": shared})
    size = args.page_size
    pages = recipients.pages(size)
    submitted = Submitted()
    while len(submitted.replies) < len(pages):
        number = len(submitted.replies)
        page = pages[number]
        try:
            reply = api.emails.batch(
                [recipient.as_json(shared) for recipient in page],
                idempotency_key=idempotency_key(base, size, number + 1),
                **fields,
            )
        except Exception as exc:
            limit = _limit_of(exc)
            if number == 0 and limit is not None and limit < size:
                size, pages = limit, recipients.pages(limit)
                continue
            raise
        submitted.replies.append(reply)
        submitted.pages.append(page)
        # As it goes: if a later page fails, the jobs already running are on the screen.
        print(f"job {reply.job_id}: accepted {reply.accepted}, rejected {reply.rejected}", flush=True)
    return submitted


def _limit_of(exc: Exception) -> int | None:
    """The server's batch limit when `exc` is its refusal of a page for having too many recipients."""
    details = getattr(exc, "details", None)
    if getattr(exc, "code", "") != "validation_error" or not isinstance(details, dict):
        return None
    limit = details.get("max")
    return limit if details.get("field") == "recipients" and isinstance(limit, int) and limit > 0 else None


def _follow(api: Any, job_ids: list[str], poll_seconds: float) -> list[Any]:
    """Each job until it is over, the progress on stderr; Ctrl-C leaves the jobs running."""
    progress = ProgressLine(sys.stderr, sys.stderr.isatty())
    latest: dict[str, Any] = {}
    try:
        while True:
            for job_id in job_ids:
                if job_id not in latest or not latest[job_id].done:
                    latest[job_id] = api.jobs.get(job_id)
            jobs = [latest[job_id] for job_id in job_ids]
            progress.show(_snapshot(jobs))
            if all(job.done for job in jobs):
                return jobs
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        raise CliError(
            "stopped following; the jobs go on (mailsage jobs get JOB_ID): " + " ".join(job_ids), 130
        ) from None
    finally:
        progress.finish()


def _snapshot(jobs: list[Any]) -> Snapshot:
    return Snapshot(
        processed=sum(job.progress.processed for job in jobs),
        total=sum(job.progress.total for job in jobs),
        sent=sum(job.counts.get(status, 0) for job in jobs for status in SENT_STATUSES),
        failed=sum(job.counts.get("failed", 0) for job in jobs),
        states=tuple(job.state for job in jobs),
    )


def _summary(submitted: Submitted, jobs: list[Any]) -> int:
    accepted = sum(reply.accepted for reply in submitted.replies)
    rejected = sum(reply.rejected for reply in submitted.replies)
    print(f"accepted {accepted}, rejected {rejected}")
    for reply, page in zip(submitted.replies, submitted.pages, strict=True):
        for error in reply.errors:
            where = page[error.index].line if 0 <= error.index < len(page) else "?"
            print(f"  rejected: line {where} {error.email}: {error.code}: {error.message}")
    statuses = SENT_STATUSES + NOT_SENT_STATUSES
    total = {status: sum(job.counts.get(status, 0) for job in jobs) for status in statuses}
    sent = sum(total[status] for status in SENT_STATUSES)
    not_sent = ", ".join(f"{status} {total[status]}" for status in NOT_SENT_STATUSES if total[status])
    print(f"sent {sent}, failed {total['failed']}" + (f" (not sent: {not_sent})" if not_sent else ""))
    unfinished = [f"{job.job_id} {job.state}" for job in jobs if job.state != "completed"]
    if unfinished:
        print(f"not completed: {', '.join(unfinished)}")
    return 0 if sent == accepted and not unfinished else 1


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number

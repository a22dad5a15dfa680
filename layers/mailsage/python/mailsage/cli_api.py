"""`mailsage send` and `mailsage jobs get|pause|resume|stop`: the v1 API through the Python client
(`mailsage batch` is in cli_batch.py)."""

from __future__ import annotations

import argparse
from typing import Any

from mailsage.cli_common import CliError, add_connection, client, dump, one_line_errors, variables

JOB_ACTIONS = ("pause", "resume", "stop")


def add_api_commands(sub: Any, data_dir: str) -> None:
    from mailsage.cli_batch import add_batch

    send = sub.add_parser("send", help="send one email through the API")
    send.add_argument("--to", required=True, metavar="ADDRESS", help="the recipient")
    send.add_argument("--name", help="the recipient's name")
    add_content(send)
    send.add_argument("--idempotency-key", help="the same key within the API's window never sends twice")
    send.add_argument("--json", action="store_true", help="print the API's reply as JSON")
    add_connection(send, data_dir)
    send.set_defaults(run=_send)
    add_batch(sub, data_dir)
    _add_jobs(sub, data_dir)


def add_content(parser: argparse.ArgumentParser) -> None:
    content = parser.add_argument_group("content: a template, or a subject with a text and/or HTML body")
    content.add_argument("--subject")
    content.add_argument("--text", help="the plain-text body")
    content.add_argument("--html", help="the HTML body")
    content.add_argument("--template", metavar="TEMPLATE_ID", help="a stored template instead")
    content.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable for the template or the content's {{ name }} placeholders (repeatable)",
    )
    content.add_argument("--from", dest="from_", metavar="ADDRESS", help="default: the server's default_from")
    content.add_argument("--reply-to", metavar="ADDRESS")
    content.add_argument("--campaign", metavar="CAMPAIGN_ID", help="count this mail in a campaign")


def content_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The request fields every send shares; the API checks the rest."""
    if args.template and (args.subject or args.text or args.html):
        raise CliError("--template cannot be combined with --subject, --text or --html", status=2)
    if not args.template and not (args.text or args.html):
        raise CliError("say what to send: --text and/or --html (with --subject), or --template", status=2)
    return {
        "subject": args.subject,
        "text": args.text,
        "html": args.html,
        "template_id": args.template,
        "from_": args.from_,
        "reply_to": args.reply_to,
        "campaign_id": args.campaign,
    }


@one_line_errors("send")
def _send(args: argparse.Namespace) -> int:
    fields = content_fields(args)
    reply = client(args).emails.send(
        args.to,
        variables=variables(args.var) or None,
        name=args.name,
        idempotency_key=args.idempotency_key,
        **fields,
    )
    if args.json:
        print(dump(reply))
    else:
        print(f"message id: {reply.message_id}")
        print(f"job id:     {reply.job_id}")
        print(f"status:     {reply.status}")
    return 0


def _add_jobs(sub: Any, data_dir: str) -> None:
    jobs = sub.add_parser("jobs", help="a job's progress; pause, resume or stop it")
    actions = jobs.add_subparsers(dest="action", required=True)
    helps = {
        "get": "the job's state and counts",
        "pause": "hold the job's unsent messages (messages in flight still go)",
        "resume": "send a paused job's messages again",
        "stop": "cancel the job's unsent messages for good",
    }
    for action, text in helps.items():
        parser = actions.add_parser(action, help=text)
        parser.add_argument("job_id", metavar="JOB_ID")
        parser.add_argument("--json", action="store_true", help="print the API's reply as JSON")
        add_connection(parser, data_dir)
        parser.set_defaults(run=_jobs)


@one_line_errors("jobs")
def _jobs(args: argparse.Namespace) -> int:
    jobs = client(args).jobs
    job = jobs.get(args.job_id) if args.action == "get" else getattr(jobs, args.action)(args.job_id)
    print(dump(job) if args.json else describe(job))
    return 0


def describe(job: Any) -> str:
    """A job for a person: what it is, where it is, and its non-zero counts."""
    counts = ", ".join(f"{status} {n}" for status, n in job.counts.items() if n) or "none"
    progress = job.progress
    lines = [
        f"job:       {job.job_id} ({job.kind})",
        f"state:     {job.state}" + (f" ({job.paused_reason})" if job.paused_reason else ""),
        f"progress:  {progress.processed}/{progress.total} ({progress.percent:.0f}%)",
        f"messages:  {counts}",
    ]
    if job.campaign_id:
        lines.append(f"campaign:  {job.campaign_id}")
    lines.append(f"created:   {job.created_at}")
    if job.finished_at:
        lines.append(f"finished:  {job.finished_at}")
    return "\n".join(lines)

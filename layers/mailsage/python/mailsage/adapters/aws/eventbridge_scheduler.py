"""The scheduler port on Amazon EventBridge Scheduler: one one-time schedule per name, in one
schedule group, whose target sends the payload (a queue body) to the send queue.

On AWS, EventBridge fires the schedule itself (within its 60-second precision): the target puts
`payload` on the send queue as the message body, retried per RETRY_POLICY and, if given, sent to the
dead-letter queue after that; `ActionAfterCompletion=DELETE` removes the schedule once it fired, so
a later `delete` of a fired schedule returns False. `due` is therefore not used in production: it
lists the group's schedules and parses their `at(...)` expressions, for the contract suite and for
a local runtime pointed at moto (whose schedules never fire).

Names: EventBridge schedule names match [0-9A-Za-z_.-]{1,64}. A port name that does not is mapped
deterministically to one that does (`schedule_name`: invalid characters become "_", and a hash of
the whole name is appended); the original name is kept in the schedule's Description so that `due`
reports the name the caller used. Times have one-second resolution: `at` is rounded up, so a
schedule never fires before the time asked for.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 64
MAX_DESCRIPTION_LENGTH = 512
# Target retries: how long and how often EventBridge keeps trying to put the payload on the queue.
RETRY_POLICY = {"MaximumEventAgeInSeconds": 86_400, "MaximumRetryAttempts": 185}

_VALID_NAME = re.compile(r"[0-9A-Za-z_.-]{1,64}")
_INVALID_CHARS = re.compile(r"[^0-9A-Za-z_.-]")
_AT_EXPRESSION = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_AT_FORMAT = "%Y-%m-%dT%H:%M:%S"


def schedule_name(name: str) -> str:
    """The EventBridge name for a port name: itself when valid, else a sanitized prefix plus the
    first 16 hex digits of its SHA-256 (so distinct names stay distinct, and the mapping is stable)."""
    if _VALID_NAME.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    prefix = _INVALID_CHARS.sub("_", name)[: MAX_NAME_LENGTH - len(digest) - 1]
    return f"{prefix}-{digest}" if prefix else digest


def at_expression(at: float) -> str:
    """`at(yyyy-mm-ddThh:mm:ss)` in UTC, rounded up to the second."""
    return f"at({datetime.fromtimestamp(math.ceil(at), tz=UTC).strftime(_AT_FORMAT)})"


def parse_at_expression(expression: str, timezone: str | None = "UTC") -> float | None:
    """Epoch seconds of an `at(...)` expression in its time zone; None for rate/cron expressions."""
    match = _AT_EXPRESSION.fullmatch(expression.strip())
    if match is None:
        return None
    naive = datetime.strptime(match.group(1), _AT_FORMAT)
    zone = UTC if timezone in (None, "", "UTC", "Etc/UTC") else ZoneInfo(timezone)
    return naive.replace(tzinfo=zone).timestamp()


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class EventBridgeScheduler:
    def __init__(
        self,
        group_name: str,
        target_arn: str,
        role_arn: str,
        dead_letter_arn: str | None = None,
        client: Any | None = None,
    ) -> None:
        self.group_name = group_name
        self.target_arn = target_arn
        self.role_arn = role_arn
        self.dead_letter_arn = dead_letter_arn
        self._client = client
        self._client_lock = threading.Lock()

    def _scheduler(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    self._client = boto3.client("scheduler", config=Config(retries={"mode": "standard"}))
        return self._client

    def schedule(self, name: str, at: float, payload: dict[str, Any]) -> None:
        """Create the schedule, or replace every setting of an existing one of the same name
        (UpdateSchedule is a full replace)."""
        from botocore.exceptions import ClientError

        target: dict[str, Any] = {
            "Arn": self.target_arn,
            "RoleArn": self.role_arn,
            "Input": json.dumps(payload, separators=(",", ":")),
            "RetryPolicy": dict(RETRY_POLICY),
        }
        if self.dead_letter_arn:
            target["DeadLetterConfig"] = {"Arn": self.dead_letter_arn}
        settings: dict[str, Any] = {
            "Name": schedule_name(name),
            "GroupName": self.group_name,
            "ScheduleExpression": at_expression(at),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "State": "ENABLED",
            "Target": target,
        }
        if len(name) <= MAX_DESCRIPTION_LENGTH:
            settings["Description"] = name
        client = self._scheduler()
        # Create, else update; a schedule deleted (or fired) in between is created again.
        for _ in range(3):
            try:
                client.create_schedule(**settings)
                return
            except ClientError as exc:
                if _error_code(exc) != "ConflictException":
                    raise
            try:
                client.update_schedule(**settings)
                return
            except ClientError as exc:
                if _error_code(exc) != "ResourceNotFoundException":
                    raise
        raise RuntimeError(f"schedule {name!r} kept changing while it was being replaced")

    def delete(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._scheduler().delete_schedule(Name=schedule_name(name), GroupName=self.group_name)
        except ClientError as exc:
            if _error_code(exc) == "ResourceNotFoundException":
                return False
            raise
        return True

    def due(self, now: float) -> list[tuple[str, dict[str, Any]]]:
        """The group's enabled one-time schedules due at `now`, oldest first. Not used on AWS (which
        fires schedules itself): one GetSchedule per schedule, for tests and moto-backed runs."""
        from botocore.exceptions import ClientError

        client = self._scheduler()
        found: list[tuple[float, str, dict[str, Any]]] = []
        for page in client.get_paginator("list_schedules").paginate(GroupName=self.group_name):
            for summary in page.get("Schedules", []):
                if summary.get("State", "ENABLED") != "ENABLED":
                    continue
                try:
                    detail = client.get_schedule(Name=summary["Name"], GroupName=self.group_name)
                except ClientError as exc:
                    if _error_code(exc) == "ResourceNotFoundException":
                        continue  # deleted since it was listed
                    raise
                at = parse_at_expression(
                    detail.get("ScheduleExpression", ""), detail.get("ScheduleExpressionTimezone")
                )
                if at is None or at > now:
                    continue
                try:
                    payload = json.loads(detail.get("Target", {}).get("Input", ""))
                except ValueError:
                    payload = None
                if not isinstance(payload, dict):
                    log.warning("schedule %s has no JSON object as input; skipped", detail["Name"])
                    continue
                description = detail.get("Description") or ""
                # The caller's name, unless the description does not map to this schedule.
                name = description if schedule_name(description) == detail["Name"] else detail["Name"]
                found.append((at, name, payload))
        return [(name, payload) for _, name, payload in sorted(found, key=lambda f: (f[0], f[1]))]

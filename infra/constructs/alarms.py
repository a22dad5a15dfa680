"""The alarms: what needs a person, as rates and ages rather than "more than zero, once" (except a
dead letter, which always does). Each is named after the stack and reads only this stack's
resources; each notifies the alarm topic. Missing data never alarms: no traffic means nothing
failed, and SES publishes no reputation rate before the first bounce or complaint."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from infra.constructs.metrics import (
    PERIOD,
    Watched,
    api_metric,
    failure_rate,
    reputation_metric,
    sender_metric,
    table_throttles,
)

_GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
_GE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD

# Throttles in each of 3 consecutive periods: the pacer keeps them rare, so a steady stream means
# something else sends on this account's quota, or the configured rate is above what SES allows.
THROTTLES_PER_PERIOD, THROTTLE_PERIODS = 10, 3
# A transactional chunk waiting longer than this in the priority lane has missed its promise.
PRIORITY_MAX_AGE_SECONDS = 60
# The bulk lane legitimately holds a campaign's backlog (paced at the SES rate: 6 hours is about
# 300,000 messages at SES's usual 14/s), but a chunk older than that means the sender is stuck or
# far behind, and SQS deletes it unsent at the queue's retention (4 days): time to act remains.
SEND_MAX_AGE_SECONDS = 6 * 3600
# 1% of invocations failing (raised, timed out or throttled) in 2 of 3 periods: a failing deploy or
# dependency alarms within 10 minutes even at a few invocations a period, while one stray error in a
# quiet period does not.
FUNCTION_FAILURE_RATE, RATE_PERIODS, RATE_DATAPOINTS = 0.01, 3, 2
# 5XX above 1% of requests (the Average of 5XXError, which is 0 or 1 per request): below 99%
# available, in 2 of 3 periods like the functions.
API_5XX_RATE = 0.01
# p90 above a second, 3 periods running: a warm single send answers in well under 200 ms, and a
# cold start (about 0.7 s) alone does not reach it. Periods with too few requests for a p90 are
# not evaluated, so a quiet stage's occasional cold start does not alarm.
API_P90_LATENCY_MS, LATENCY_PERIODS = 1000, 3
# DynamoDB throttling requests in 3 consecutive periods: the SDK retries a throttle and the stores
# treat it as retryable, so a burst is absorbed; throttling that persists (a hot key, a table at
# its on-demand limit) slows every function.
TABLE_THROTTLE_PERIODS = 3
# SES's reputation rates (0..1), for this stage's configuration set. SES reviews an account at a 5%
# bounce rate and may pause it at 10%; it recommends staying under 2%, which leaves time to clean a
# list before a review. Complaints: review at 0.1%, so alarm at half of it. Each rate is already
# averaged by SES over a representative volume, so one hourly datapoint above it is enough.
BOUNCE_RATE, COMPLAINT_RATE = 0.02, 0.0005
REPUTATION_PERIOD = cdk.Duration.hours(1)


class Alarms:
    """Builds the alarms in `scope` (the monitoring construct: their logical ids stay put)."""

    def __init__(self, scope: Construct, watched: Watched, notify: cloudwatch.IAlarmAction) -> None:
        self.scope = scope
        self.watched = watched
        self.notify = notify
        self.stack_name = cdk.Stack.of(scope).stack_name
        self.all: list[cloudwatch.Alarm] = []
        self.dead_letters()
        self.functions()
        self.sending()
        self.api()
        self.storage()
        self.reputation()

    def alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        description: str,
        *,
        threshold: float = 0,
        periods: int = 1,
        datapoints: int | None = None,
        comparison: cloudwatch.ComparisonOperator = _GT,
        low_sample_percentile: str | None = None,
    ) -> None:
        created = cloudwatch.Alarm(
            self.scope,
            construct_id,
            # Named after the stack (so each stage's are told apart in the console and in a
            # notification); the logical id must not move while the name stays, or the deploy
            # would create the new alarm under a name the old one still holds.
            alarm_name=f"{self.stack_name}-{construct_id}",
            metric=metric,
            alarm_description=description,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=periods,
            datapoints_to_alarm=datapoints or periods,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            evaluate_low_sample_count_percentile=low_sample_percentile,
        )
        created.add_alarm_action(self.notify)
        self.all.append(created)

    def dead_letters(self) -> None:
        for name, work in self.watched.queues.items():
            self.alarm(
                f"{name.capitalize()}DeadLetters",
                work.dlq.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
                f"Messages in the {name} dead-letter queue: inspect them, fix the cause, redrive.",
            )
        self.alarm(
            "ScheduleDeadLetters",
            self.watched.schedule_dead_letters.metric_approximate_number_of_messages_visible(
                period=PERIOD, statistic="Maximum"
            ),
            "A scheduled send EventBridge Scheduler could not deliver: the job never started; redrive it.",
        )

    def functions(self) -> None:
        for name, function in self.watched.functions.items():
            self.alarm(
                f"{name.capitalize()}FailureRate",
                failure_rate(function),
                f"More than {FUNCTION_FAILURE_RATE:.0%} of the {name} function's invocations failed (raised, "
                f"timed out or were throttled) in {RATE_DATAPOINTS} of {RATE_PERIODS} 5-minute periods: "
                "see its logs; throttles mean the account's Lambda concurrency is used up.",
                threshold=FUNCTION_FAILURE_RATE,
                periods=RATE_PERIODS,
                datapoints=RATE_DATAPOINTS,
            )

    def sending(self) -> None:
        self.alarm(
            "SenderProviderThrottles",
            sender_metric(self.watched, "Throttles"),
            f"The provider kept throttling sends (more than {THROTTLES_PER_PERIOD} per 5 minutes, "
            f"{THROTTLE_PERIODS} periods running): another sender shares the SES quota, or ses_max_rate "
            "is above it. Nothing fails, but mail goes out late.",
            threshold=THROTTLES_PER_PERIOD,
            periods=THROTTLE_PERIODS,
        )
        self.alarm(
            "SenderJobsParked",
            sender_metric(self.watched, "JobsParked"),
            "A job was parked: the provider's daily quota ran out or SES paused sending. It resumes by "
            "itself when the quota allows; after a pause, once sending is resumed in SES.",
            threshold=1,
            comparison=_GE,
        )
        lanes = (
            (
                "Priority",
                PRIORITY_MAX_AGE_SECONDS,
                "Transactional mail",
                "its senders are all busy or failing",
            ),
            ("Send", SEND_MAX_AGE_SECONDS, "Bulk mail", "the sender is stuck or far behind the backlog"),
        )
        for lane, limit, what, why in lanes:
            queue = self.watched.queues[lane.lower()].queue
            waited = f"{limit // 3600} hours" if limit >= 3600 else f"{limit} s"
            self.alarm(
                f"{lane}QueueAge",
                queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum"),
                f"{what} waited more than {waited} in the {lane.lower()} queue: {why}.",
                threshold=limit,
            )

    def api(self) -> None:
        self.alarm(
            "Api5xxRate",
            api_metric(self.watched, "5XXError", statistic="Average"),
            f"More than {API_5XX_RATE:.0%} of API requests got a 5XX in {RATE_DATAPOINTS} of "
            f"{RATE_PERIODS} 5-minute periods: see the api function's logs and the access log's "
            "integration error.",
            threshold=API_5XX_RATE,
            periods=RATE_PERIODS,
            datapoints=RATE_DATAPOINTS,
        )
        self.alarm(
            "ApiLatencyP90",
            api_metric(self.watched, "Latency", statistic="p90"),
            f"The API's p90 latency stayed above {API_P90_LATENCY_MS} ms for {LATENCY_PERIODS} periods: "
            "see the api function's duration and DynamoDB's latency and throttles.",
            threshold=API_P90_LATENCY_MS,
            periods=LATENCY_PERIODS,
            low_sample_percentile="ignore",
        )

    def storage(self) -> None:
        self.alarm(
            "TableThrottles",
            table_throttles(self.watched),
            f"DynamoDB throttled requests on the table in {TABLE_THROTTLE_PERIODS} consecutive 5-minute "
            "periods: a hot key or the table's throughput limit; every function slows down.",
            periods=TABLE_THROTTLE_PERIODS,
        )

    def reputation(self) -> None:
        for metric, limit, review in (
            ("Reputation.BounceRate", BOUNCE_RATE, "5%"),
            ("Reputation.ComplaintRate", COMPLAINT_RATE, "0.1%"),
        ):
            kind = metric.removeprefix("Reputation.").removesuffix("Rate")
            self.alarm(
                f"Ses{kind}Rate",
                reputation_metric(self.watched, metric, REPUTATION_PERIOD),
                f"This stage's SES {kind.lower()} rate is above {limit:.2%} (SES reviews the account at "
                f"{review}): find the list or the sender behind it, and stop it before SES does.",
                threshold=limit,
            )

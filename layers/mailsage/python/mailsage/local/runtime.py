"""`mailsage serve`: the HTTP front door, the sender worker loops, the scheduler loop, the events
and webhook loops and the SMTP sink in one process, all on one data directory that survives
restarts.

Each loop plays a Lambda SQS event source: it receives from a queue, invokes the real handler of
`functions/<name>/` with an SQS-shaped event and deletes what the handler did not report as failed.
- send queue -> functions/sender: the bulk workers take from both lanes (transactional first); the
  transactional lane's queue also has loops of its own, as its own event source mapping on AWS, so
  a single send never waits for a worker to finish a campaign's chunk
- events queue -> functions/events: what SES's configuration set delivers on AWS; locally the
  built-in sink's notifications (delivery, complaint) go there
- webhook queue -> functions/webhooks: signed POSTs to the accounts' endpoints
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from mailsage.adapters.lanes import LanedQueue
from mailsage.adapters.sqlite.store import SqliteStore
from mailsage.domain.auth import AuthService
from mailsage.domain.models import MessageStatus
from mailsage.domain.pacing import Lane, lane_of
from mailsage.domain.submission import enqueue_chunks
from mailsage.local.dev_credentials import dev_credentials
from mailsage.local.events import sqs_event
from mailsage.local.functions import HandlerPool, LocalContext, load_handler
from mailsage.local.http import API_CONCURRENCY, FrontDoor, http_server
from mailsage.local.ingest import local_queues, sqs_ingest_queue
from mailsage.local.instance_lock import InstanceLock
from mailsage.local.ports import PortInUse, require_free
from mailsage.local.private_files import tighten_data_dir
from mailsage.local.sink_process import SinkProcess
from mailsage.ports import Queue
from mailsage.settings import ApiSettings, CommonSettings
from mailsage.wiring import Backends, backends

log = logging.getLogger("mailsage.local")

DEFAULT_PORT = 8026
DEFAULT_SMTP_PORT = 1026

# Records per handler invocation, as the stack's event sources (infra/stack.py) pass them.
SENDER_BATCH = 10
EVENTS_BATCH = 10
INGEST_BATCH = 10
WEBHOOKS_BATCH = 2  # each POST may take the whole webhook timeout
# The sink notifies while it accepts a message, before its 250 reply, so before the sender has
# recorded the message as sent; like SES's events, the notification arrives a moment later.
NOTIFICATION_DELAY_SECONDS = 1.0
FAILED_INVOCATION_RETRY_SECONDS = 2.0
# A stop (SIGTERM, Ctrl-C) waits this long, in all, for the requests being answered and for what
# each loop has in hand (a worker: the message it is sending; the sender stops a chunk when the
# context's remaining time is 0), then exits anyway: what is not acknowledged stays in the queue
# and is taken up at the next start. The sink then gets SINK_STOP_SECONDS.
STOP_SECONDS = 10.0
IN_FLIGHT_AT_STOP = "the server stopped while this message was being sent; it is sent again"
SINK_STOP_SECONDS = 5.0
LOOP_BACKOFF_MAX_SECONDS = 30.0
SUPERVISOR_INTERVAL_SECONDS = 1.0


@dataclass
class RuntimeConfig:
    data_dir: Path
    # Not 8025/1025: Mailpit's and MailHog's, which a developer may well be running too.
    port: int = DEFAULT_PORT
    smtp_port: int = DEFAULT_SMTP_PORT
    host: str = "127.0.0.1"
    # Sender loops. Each spends most of its time waiting for the SMTP server's replies (four round
    # trips a message), so more than the cores pay: on 2 cores 4 keep the built-in sink ~90% busy.
    workers: int = 4
    # Loops of the transactional lane alone (single sends: short, so two keep it moving).
    priority_workers: int = 2
    sink: bool = True


class LocalRuntime:
    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loops: dict[str, tuple[threading.Thread, Any]] = {}  # name -> (thread, target)
        self._failing: dict[str, str] = {}  # loop name -> the error its last iteration raised
        self._last_purge = 0.0
        self._http: FrontDoor | None = None
        self._sink: SinkProcess | None = None
        self._instance = InstanceLock(config.data_dir)
        self.backends: Backends | None = None
        self.events_queue: Queue | None = None  # delivery reports for the events function

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> tuple[str, str]:
        cfg = self.config
        tighten_data_dir(cfg.data_dir)  # before anything writes in it
        # Before taking over what a predecessor left in flight: it must be gone (see _recover).
        self._instance.acquire()
        try:
            sqs_ingest = self._check_before_start()
        except (PortInUse, ValueError):
            self._instance.release()
            raise
        os.environ["MAILSAGE_DATA_DIR"] = str(cfg.data_dir)
        # Tracking pixels, tracked links and unsubscribe URLs point at this server unless told otherwise.
        os.environ.setdefault("MAILSAGE_PUBLIC_URL", f"http://{cfg.host}:{cfg.port}")
        self.events_queue = _events_queue(CommonSettings())
        if cfg.sink:
            self._sink = SinkProcess(
                cfg.data_dir / "outbox",
                cfg.data_dir / "sink-notifications",
                cfg.smtp_port,
                cfg.host,
                NOTIFICATION_DELAY_SECONDS,
            )
            self._sink.start()
            # Mail goes to the sink unless a real relay is named.
            os.environ.setdefault("MAILSAGE_SMTP_URL", f"smtp://{cfg.host}:{cfg.smtp_port}")

        # Handlers are loaded after the environment is set, as in a Lambda cold start.
        api = HandlerPool("api", size=API_CONCURRENCY)
        with api.acquire():
            pass  # load one now: a bad setting fails at start, not on the first request
        self.backends = backends(ApiSettings())
        credentials = dev_credentials(cfg.data_dir, AuthService(self.backends.store))
        self._recover()

        self._spawn_loops(sqs_ingest)
        self._http = http_server(cfg.host, cfg.port, api, ApiSettings(), health=self.health)
        self._spawn("http", self._http.serve_forever)
        supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        supervisor.start()
        self._threads.append(supervisor)
        return credentials

    def _check_before_start(self) -> Queue | None:
        """What would fail half-way through the start, checked before anything starts: the ports,
        and the SQS ingest queue's needs. Returns that queue (None: not asked for)."""
        cfg = self.config
        require_free(cfg.host, cfg.port, "HTTP", "--port")
        if cfg.sink:
            require_free(cfg.host, cfg.smtp_port, "SMTP sink", "--smtp-port")
        return sqs_ingest_queue()

    def _spawn_loops(self, sqs_ingest: Queue | None) -> None:
        """Each loop's handler is loaded here, one after the other: Powertools' Logger is not safe
        to set up from several threads at once (a loop died at start once in 25 starts)."""
        cfg = self.config
        assert self.backends is not None
        for i in range(cfg.workers):
            self._spawn_pump(f"worker-{i}", self.backends.queue, "sender", SENDER_BATCH)
        lanes = self.backends.queue
        if isinstance(lanes, LanedQueue) and lanes.priority is not None:
            # `--workers 0` means no sender at all (a server that only accepts), in either lane.
            for i in range(min(cfg.priority_workers, cfg.workers)):
                self._spawn_pump(f"priority-{i}", lanes.priority, "sender", SENDER_BATCH)
        if self.events_queue is not None:
            self._spawn_pump("events", self.events_queue, "events", EVENTS_BATCH)
        if isinstance(self.backends.store, SqliteStore):  # `mailsage ingest FILE` feeds it
            self._spawn_pump("ingest", local_queues(self.backends)[0], "ingest", INGEST_BATCH)
        if sqs_ingest is not None:
            self._spawn_pump("ingest-sqs", sqs_ingest, "ingest", INGEST_BATCH)
        if self.backends.webhooks is not None:  # on AWS only with MAILSAGE_WEBHOOK_QUEUE_URL
            for i in range(cfg.workers):
                self._spawn_pump(f"webhooks-{i}", self.backends.webhooks, "webhooks", WEBHOOKS_BATCH)
        if self.backends.scheduler is not None:  # on AWS, EventBridge Scheduler fires schedules
            self._spawn("scheduler", partial(self._run, self._schedule_once, every=0.5))

    def stop(self) -> list[str]:
        """Graceful and bounded (STOP_SECONDS, then SINK_STOP_SECONDS): stop taking requests, let
        the requests being answered and each loop's work in hand finish, release what was received
        but not started, stop and reap the sink. Returns the loops still running when the time was
        up: the caller exits anyway (their records come back from the queue at the next start)."""
        self._stopping.set()
        deadline = time.monotonic() + STOP_SECONDS
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http.drain(deadline)
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            log.warning(
                "stopping without %s: still busy after %.0f s; what they hold is taken up at the next start",
                ", ".join(stuck),
                STOP_SECONDS,
            )
        if self._sink is not None:
            self._sink.stop(SINK_STOP_SECONDS)
        if not stuck:
            self._instance.release()  # else the process exits now, which releases it
        return stuck

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        self._loops[name] = (thread, target)

    def health(self) -> dict[str, str]:
        """Each loop: "ok", "dead" (its thread ended) or "failing: <error>" (its last iteration)."""
        states = {}
        for name, (thread, _) in self._loops.items():
            failing = self._failing.get(name)
            states[name] = "dead" if not thread.is_alive() else f"failing: {failing}" if failing else "ok"
        if self._sink is not None:
            states["sink"] = "ok" if self._sink.alive() else "dead"
        return states

    def _supervise(self) -> None:
        """Restart a loop whose thread ended anyway (every loop catches its own errors; this is
        for what it cannot, such as an error in its error handling)."""
        while not self._stopping.wait(SUPERVISOR_INTERVAL_SECONDS):
            for name, (thread, target) in list(self._loops.items()):
                if not thread.is_alive() and not self._stopping.is_set():
                    log.error("the %s loop stopped; restarting it", name)
                    self._spawn(name, target)
            self._restart_sink()

    def _restart_sink(self) -> None:
        """A sink that died (killed, out of memory) is started again: the sender's attempts in the
        meantime are transient failures, retried; its spooled notifications are taken up."""
        sink = self._sink
        if sink is None or sink.alive() or self._stopping.is_set():
            return
        log.error("the built-in SMTP sink stopped (pid %s); restarting it", sink.pid)
        sink.stop(0)  # reaps it
        try:
            sink.start()
        except Exception:
            log.exception("the built-in SMTP sink could not be restarted; trying again")

    def _recover(self) -> None:
        """Re-enqueue every chunk with work left of every active job. The queue skips chunks still
        waiting in it, and the sender skips messages already sent, so this never duplicates mail.
        A message still `sending` was held by the previous server, which is gone (the data
        directory's lock says so): it goes back to `queued` at once instead of waiting out its
        lease. The sender claims one message just before sending it, so these are only the ones
        that were in flight; each may have reached the relay, the one window for a duplicate."""
        assert self.backends is not None
        store, queue = self.backends.store, self.backends.queue
        for account_id, job_id in store.active_jobs():
            job = store.get_job(account_id, job_id)
            chunks = store.pending_chunks(job_id)
            for chunk in chunks:
                for message in store.chunk_messages(job_id, chunk):
                    if message.status == MessageStatus.SENDING:
                        store.release_message(message.id, IN_FLIGHT_AT_STOP)
            enqueue_chunks(queue, account_id, job_id, chunks, lane=lane_of(job) if job else Lane.BULK)

    # -- loops ------------------------------------------------------------------------------
    def _spawn_pump(self, name: str, queue: Queue, function: str, batch: int) -> None:
        handler = load_handler(function)  # one per loop, like one warm execution environment
        self._spawn(name, partial(self._pump, queue, function, batch, handler))

    def _pump(self, queue: Queue, function: str, batch: int, handler: ModuleType) -> None:
        """One Lambda execution environment behind an SQS event source."""
        self._run(partial(self._pump_once, queue, function, batch, handler))

    def _run(self, iteration: Any, every: float = 0.0) -> None:
        """Run `iteration` until stopping. One that fails (a locked database, a full disk) is
        logged, shown by `health`, and tried again after a growing pause: a loop never dies of it,
        or accepted mail would wait for a restart."""
        name = threading.current_thread().name
        failures = 0
        while not self._stopping.is_set():
            try:
                iteration()
            except Exception as exc:
                failures += 1
                self._failing[name] = f"{type(exc).__name__}: {exc}"[:200]
                pause = min(LOOP_BACKOFF_MAX_SECONDS, 0.5 * 2**failures)
                log.exception("%s loop: an iteration failed; trying again in %.1f s", name, pause)
                self._stopping.wait(pause)
                continue
            failures = 0
            self._failing.pop(name, None)
            if every:
                self._stopping.wait(every)

    def _pump_once(self, queue: Queue, function: str, batch: int, handler: ModuleType) -> None:
        """Receive up to `batch` records, invoke the handler with them, delete what it did not
        report as failed (those come back after the retry delay the handler set)."""
        received = queue.receive(max_messages=batch, wait_seconds=1.0)
        if not received:
            self._stopping.wait(0.05)  # an empty receive may return at once (no long polling)
            return
        if self._stopping.is_set():  # received while the stop began: handed back, not started
            for r in received:
                queue.retry_later(r.receipt, 0)
            return
        context = LocalContext(f"mailsage-{function}", stopping=self._stopping)
        try:
            result = handler.lambda_handler(sqs_event(received), context)
        except Exception:
            # Records of a crashed invocation come back in seconds, not after the visibility
            # timeout (minutes): the handlers are idempotent, so trying them again is safe.
            log.exception(
                "%s invocation failed; its records come back in %.0f s",
                function,
                FAILED_INVOCATION_RETRY_SECONDS,
            )
            for r in received:
                self._settle(partial(queue.retry_later, r.receipt, FAILED_INVOCATION_RETRY_SECONDS))
            return
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        for r in received:
            if r.message_id not in failed:
                self._settle(partial(queue.ack, r.receipt))

    def _settle(self, write: Any) -> None:
        """Retry a queue write that settles a received record (an ack, a retry delay; both
        idempotent) while the database is unavailable: one that never lands leaves the record
        invisible for the whole visibility timeout, minutes after the disk or lock is back."""
        from mailsage.domain.retrying import retry_write

        retry_write(write, max_pause=LOOP_BACKOFF_MAX_SECONDS, wait=self._stopping.wait)

    def _schedule_once(self) -> None:
        """Send what is due; once a minute purge what is past its retention (DynamoDB's TTL on AWS)."""
        assert self.backends is not None and self.backends.scheduler is not None
        scheduler, queue = self.backends.scheduler, self.backends.queue
        now = time.time()
        for name, payload in scheduler.due(now):
            queue.send([payload], [f"schedule:{name}"])
            scheduler.delete(name)
        if now - self._last_purge >= 60:
            self.backends.store.purge_expired(now)
            self._last_purge = now


def _events_queue(settings: CommonSettings) -> Queue | None:
    """Where delivery reports wait for the events function: a queue in the SQLite database;
    on AWS the SQS queue named by MAILSAGE_EVENTS_QUEUE_URL (the stack's events queue), or none."""
    if settings.backend == "sqlite":
        from mailsage.adapters.sqlite.queue import SqliteQueue
        from mailsage.adapters.sqlite.store import SqliteStore

        store = backends(settings).store  # the same database as every other local queue
        assert isinstance(store, SqliteStore)
        return SqliteQueue(
            store.db,
            "events",
            # A notification that overtook the sender's write is retried after this (FeedbackService
            # raises NotYetSent): seconds, not the send queue's minutes.
            visibility_timeout=5.0,
            max_receives=settings.queue_max_receives,
        )
    url = os.environ.get("MAILSAGE_EVENTS_QUEUE_URL")
    if not url:
        return None
    from mailsage.adapters.aws.sqs_queue import SqsQueue

    return SqsQueue(url)

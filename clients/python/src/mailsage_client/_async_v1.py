"""The v1 resources of the async client: the same methods as `_sync_v1.py`, awaited; lists are
`async for` iterators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar

from mailsage_client import _calls_v1 as v1
from mailsage_client._core import Call, next_wait
from mailsage_client._pagination import AsyncPaginator
from mailsage_client.models import (
    BatchReply,
    Campaign,
    Delivery,
    Job,
    Preview,
    Recipient,
    ReplayReply,
    SendReply,
    Template,
    TestEventReply,
    Webhook,
    WebhookCreated,
)

T = TypeVar("T")


class AsyncRunner:
    def __init__(self, run: Callable[[Call[Any]], Awaitable[Any]]) -> None:
        self._run = run

    async def _call(self, request: Call[T]) -> T:
        result: T = await self._run(request)
        return result


class AsyncEmails(AsyncRunner):
    async def send(
        self,
        to: str,
        *,
        subject: str | None = None,
        text: str | None = None,
        html: str | None = None,
        template_id: str | None = None,
        variables: Mapping[str, Any] | None = None,
        name: str | None = None,
        from_: str | None = None,
        reply_to: str | None = None,
        campaign_id: str | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> SendReply:
        """Send one email to `to` (`text` is the plain-text part). `extra` passes other request
        fields as they are (`tracking`, `list_unsubscribe`, `provider`)."""
        return await self._call(
            v1.send(
                to,
                name=name,
                variables=variables,
                idempotency_key=idempotency_key,
                subject=subject,
                text=text,
                html=html,
                template_id=template_id,
                from_=from_,
                reply_to=reply_to,
                campaign_id=campaign_id,
                extra=extra,
            )
        )

    async def batch(
        self,
        recipients: Iterable[Recipient | Mapping[str, Any] | str],
        *,
        subject: str | None = None,
        text: str | None = None,
        html: str | None = None,
        template_id: str | None = None,
        from_: str | None = None,
        reply_to: str | None = None,
        campaign_id: str | None = None,
        validation: Literal["lenient", "strict"] = "lenient",
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> BatchReply:
        """One job for many recipients (`Recipient`, a dict of that shape, or an address)."""
        return await self._call(
            v1.batch(
                recipients,
                validation=validation,
                idempotency_key=idempotency_key,
                subject=subject,
                text=text,
                html=html,
                template_id=template_id,
                from_=from_,
                reply_to=reply_to,
                campaign_id=campaign_id,
                extra=extra,
            )
        )


class AsyncJobs(AsyncRunner):
    """A job's state; pause, resume and stop answer with the `Job` as the action left it."""

    def __init__(
        self, run: Callable[[Call[Any]], Awaitable[Any]], sleep: Callable[[float], Awaitable[None]]
    ) -> None:
        super().__init__(run)
        self._sleep = sleep

    async def get(self, job_id: str) -> Job:
        return await self._call(v1.get_job(job_id))

    async def pause(self, job_id: str) -> Job:
        return await self._call(v1.control_job(job_id, "pause"))

    async def resume(self, job_id: str) -> Job:
        return await self._call(v1.control_job(job_id, "resume"))

    async def stop(self, job_id: str) -> Job:
        return await self._call(v1.control_job(job_id, "stop"))

    async def follow(self, job_id: str, *, interval: float = 1.0) -> AsyncIterator[Job]:
        """The job as it moves, polled every `interval` seconds until it is done: the last `Job`
        yielded is final (`job.done`). Stop iterating to stop following."""
        while True:
            job = await self.get(job_id)
            yield job
            if job.done:
                return
            await self._sleep(interval)

    async def wait(self, job_id: str, *, interval: float = 1.0, timeout: float | None = None) -> Job:
        """The job once done (polled every `interval` seconds). With `timeout`, `TimeoutError`
        naming the state it is still in once the next poll would wait beyond it."""
        waited = 0.0
        async for job in self.follow(job_id, interval=interval):
            if job.done:
                return job
            waited = next_wait(job_id, job.state, waited, interval, timeout)
        raise AssertionError("follow ends with a done job")


class AsyncTemplates(AsyncRunner):
    async def create(
        self,
        name: str,
        subject: str,
        *,
        html: str | None = None,
        text: str | None = None,
        idempotency_key: str | None = None,
    ) -> Template:
        return await self._call(
            v1.create_template(v1.template_body(name, subject, html, text), idempotency_key)
        )

    async def get(self, template_id: str) -> Template:
        return await self._call(v1.get_template(template_id))

    def list(self, *, limit: int | None = None) -> AsyncPaginator[Template]:
        """Every template; `limit` is the page size."""
        return AsyncPaginator(self._run, v1.list_templates(limit))

    async def replace(
        self, template_id: str, name: str, subject: str, *, html: str | None = None, text: str | None = None
    ) -> Template:
        return await self._call(v1.replace_template(template_id, v1.template_body(name, subject, html, text)))

    async def delete(self, template_id: str) -> None:
        await self._call(v1.delete_template(template_id))

    async def preview(self, template_id: str, variables: Mapping[str, Any] | None = None) -> Preview:
        return await self._call(v1.preview_template(template_id, variables))


class AsyncWebhooks(AsyncRunner):
    async def create(
        self,
        name: str,
        url: str,
        events: Iterable[str],
        *,
        scope: Literal["global", "scoped"] = "global",
        domains: Iterable[str] | None = None,
        enabled: bool = True,
        idempotency_key: str | None = None,
    ) -> WebhookCreated:
        """A webhook for `events`; the reply is the only one that shows its signing secret."""
        body = v1.webhook_body(
            name=name, url=url, events=events, enabled=enabled, scope=scope, domains=domains
        )
        return await self._call(v1.create_webhook(body, idempotency_key))

    async def get(self, webhook_id: str) -> Webhook:
        return await self._call(v1.get_webhook(webhook_id))

    def list(self, *, limit: int | None = None) -> AsyncPaginator[Webhook]:
        return AsyncPaginator(self._run, v1.list_webhooks(limit))

    async def update(
        self,
        webhook_id: str,
        *,
        name: str | None = None,
        url: str | None = None,
        events: Iterable[str] | None = None,
        enabled: bool | None = None,
        scope: Literal["global", "scoped"] | None = None,
        domains: Iterable[str] | None = None,
    ) -> Webhook:
        """Change the fields given; `events` replaces the subscriptions."""
        body = v1.webhook_body(
            name=name, url=url, events=events, enabled=enabled, scope=scope, domains=domains
        )
        return await self._call(v1.update_webhook(webhook_id, body))

    async def delete(self, webhook_id: str) -> None:
        await self._call(v1.delete_webhook(webhook_id))

    def deliveries(self, webhook_id: str, *, limit: int | None = None) -> AsyncPaginator[Delivery]:
        return AsyncPaginator(self._run, v1.list_deliveries(webhook_id, limit))

    async def replay(
        self, webhook_id: str, delivery_id: str, *, idempotency_key: str | None = None
    ) -> ReplayReply:
        return await self._call(v1.replay_delivery(webhook_id, delivery_id, idempotency_key))

    async def test(
        self, webhook_id: str, event_type: str | None = None, *, idempotency_key: str | None = None
    ) -> TestEventReply:
        """Queue a sample event (marked `"test": true`) for this webhook."""
        return await self._call(v1.test_webhook(webhook_id, event_type, idempotency_key))


class AsyncCampaigns(AsyncRunner):
    async def get(self, campaign_id: str) -> Campaign:
        return await self._call(v1.get_campaign(campaign_id))

"""`AsyncMailSage`: the asynchronous client, the same surface as `MailSage` with awaited methods."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

import httpx

from mailsage_client import _calls_v1 as v1
from mailsage_client._async_v1 import AsyncCampaigns, AsyncEmails, AsyncJobs, AsyncTemplates, AsyncWebhooks
from mailsage_client._async_v2 import AsyncAccount
from mailsage_client._core import Call, RetryPolicy, headers, no_reply, outcome, settings
from mailsage_client._errors import MailSageError

T = TypeVar("T")


class AsyncMailSage:
    """The async twin of `MailSage` (same arguments; `http_client` is an `httpx.AsyncClient`).

    Use it as `async with AsyncMailSage() as client:`, or call `await client.aclose()`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url, api_key = settings(base_url, api_key)
        self._headers = headers(api_key)
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._owns_http = http_client is None
        self._timeout = timeout
        self.retry_policy = RetryPolicy(max_retries=max_retries)
        # Replaced by tests to see the waits without waiting.
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.emails = AsyncEmails(self.run)
        self.jobs = AsyncJobs(self.run, lambda seconds: self._sleep(seconds))
        self.templates = AsyncTemplates(self.run)
        self.webhooks = AsyncWebhooks(self.run)
        self.campaigns = AsyncCampaigns(self.run)

    def account(self, account_id: str) -> AsyncAccount:
        """The AhaSend-compatible v2 operations of one account (`/v2/accounts/{account_id}`)."""
        return AsyncAccount(self.run, account_id)

    async def ping(self) -> bool:
        """Whether the server answers and accepts the key (`GET /v2/ping`)."""
        return await self.run(v1.ping())

    async def run(self, request: Call[T]) -> T:
        """Send `request`, retrying as the policy allows; its parsed reply or its error."""
        attempt = 0
        while True:
            try:
                return outcome(request, await self._send(request))
            except MailSageError as error:
                delay = self.retry_policy.delay(request, attempt, error)
                if delay is None:
                    raise
            await self._sleep(delay)
            attempt += 1

    async def _send(self, request: Call[T]) -> httpx.Response:
        try:
            return await self._http.request(
                request.method,
                self.base_url + request.path,
                json=request.json,
                params=request.params,
                headers={**self._headers, **request.request_headers()},
                timeout=self._timeout,
            )
        except httpx.TransportError as exc:
            raise no_reply(self.base_url, self._timeout, exc) from exc

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncMailSage:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

"""`MailSage`: the synchronous client."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

import httpx

from mailsage_client import _calls_v1 as v1
from mailsage_client._core import Call, RetryPolicy, headers, no_reply, outcome, settings
from mailsage_client._errors import MailSageError
from mailsage_client._sync_v1 import Campaigns, Emails, Jobs, Templates, Webhooks
from mailsage_client._sync_v2 import Account

T = TypeVar("T")


class MailSage:
    """A client of one MailSage server.

    `base_url` defaults to `$MAILSAGE_URL`, else `http://127.0.0.1:8026` (`mailsage serve`);
    `api_key` to `$MAILSAGE_API_KEY` (without one: `MailSageError` with code `missing_api_key`).
    Creates carry an `Idempotency-Key` and are retried up to `max_retries` times when that cannot
    send twice (see `_core.py`). `http_client` replaces the underlying `httpx.Client` (proxies, a
    test transport); the client still sets its own headers and `timeout` on each request.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.base_url, api_key = settings(base_url, api_key)
        self._headers = headers(api_key)
        self._http = http_client or httpx.Client(timeout=timeout)
        self._owns_http = http_client is None
        self._timeout = timeout
        self.retry_policy = RetryPolicy(max_retries=max_retries)
        # Replaced by tests to see the waits without waiting.
        self._sleep: Callable[[float], None] = time.sleep
        self.emails = Emails(self.run)
        self.jobs = Jobs(self.run, lambda seconds: self._sleep(seconds))
        self.templates = Templates(self.run)
        self.webhooks = Webhooks(self.run)
        self.campaigns = Campaigns(self.run)

    def account(self, account_id: str) -> Account:
        """The AhaSend-compatible v2 operations of one account (`/v2/accounts/{account_id}`)."""
        return Account(self.run, account_id)

    def ping(self) -> bool:
        """Whether the server answers and accepts the key (`GET /v2/ping`)."""
        return self.run(v1.ping())

    def run(self, request: Call[T]) -> T:
        """Send `request`, retrying as the policy allows; its parsed reply or its error."""
        attempt = 0
        while True:
            try:
                return outcome(request, self._send(request))
            except MailSageError as error:
                delay = self.retry_policy.delay(request, attempt, error)
                if delay is None:
                    raise
            self._sleep(delay)
            attempt += 1

    def _send(self, request: Call[T]) -> httpx.Response:
        try:
            return self._http.request(
                request.method,
                self.base_url + request.path,
                json=request.json,
                params=request.params,
                headers={**self._headers, **request.request_headers()},
                timeout=self._timeout,
            )
        except httpx.TransportError as exc:
            raise no_reply(self.base_url, self._timeout, exc) from exc

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> MailSage:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

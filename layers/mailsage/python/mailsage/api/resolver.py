"""The API resolver, with the request being handled kept per thread (per context) instead of in
Powertools' class attributes.

Powertools 3 stores the current request in `BaseRouter.current_event` / `lambda_context`, class
attributes shared by every resolver and router of the process, and module-level routers read the
routing context of whichever app included them last. On Lambda one process handles one request at
a time, so that is harmless; `mailsage serve` handles several requests at once in threads, and a
request then read another caller's path, headers and API key. Here those three live in one context
variable set for the duration of `resolve`, so every reader (the resolver, every router through
its `api_resolver`, our middlewares and error handlers) sees the request of its own thread. On
Lambda the behaviour is the same as before: one request, set at the start, reset at the end.
Powertools' own `HttpResolverLocal` does the same for ASGI servers.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext


@dataclass
class _Request:
    event: BaseProxyEvent
    lambda_context: Any
    context: dict[str, Any] = field(default_factory=dict)


# One for every resolver instance: a router answers through the app that included it last, which
# need not be the one resolving this request.
_request: ContextVar[_Request | None] = ContextVar("mailsage_api_request", default=None)


class RequestScopedResolver(APIGatewayRestResolver):
    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        raw = event.raw_event if isinstance(event, BaseProxyEvent) else event
        # Routes, middlewares and exception handlers registered before the first request put their
        # routing context here; each request starts from a copy of it, as Powertools' resolve does.
        state = _Request(self._to_proxy_event(dict(raw)), context, dict(self._startup_context))
        token = _request.set(state)
        try:
            return super().resolve(event, context)
        finally:
            _request.reset(token)

    # Powertools declares these as plain attributes and assigns them; properties keep that interface.
    @property  # type: ignore[override]
    def current_event(self) -> BaseProxyEvent:
        state = _request.get()
        return state.event if state is not None else BaseRouter.current_event

    @current_event.setter
    def current_event(self, value: BaseProxyEvent) -> None:
        state = _request.get()
        if state is not None:
            state.event = value
        else:
            BaseRouter.current_event = value

    @property  # type: ignore[override]
    def lambda_context(self) -> LambdaContext:
        state = _request.get()
        return state.lambda_context if state is not None else BaseRouter.lambda_context

    @lambda_context.setter
    def lambda_context(self, value: LambdaContext) -> None:
        state = _request.get()
        if state is not None:
            state.lambda_context = value
        else:
            BaseRouter.lambda_context = value

    @property  # type: ignore[override]
    def context(self) -> dict[str, Any]:
        state = _request.get()
        return state.context if state is not None else self._startup_context

    @context.setter
    def context(self, value: dict[str, Any]) -> None:
        state = _request.get()
        if state is not None:
            state.context = value
        else:
            self._startup_context = value

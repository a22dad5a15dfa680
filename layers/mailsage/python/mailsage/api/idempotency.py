"""Idempotency-Key handling for the create operations of both surfaces (being built: issue 4)."""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware


def middleware() -> Callable[[APIGatewayRestResolver, NextMiddleware], Response]:
    def idempotent(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
        return next_middleware(app)

    return idempotent

"""Compose the API resolver: middleware, error mapping and the routers of each surface."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig

from mailsage.api import body, docs, errors, idempotency, rate_limits, security, tracking, v2
from mailsage.api.resolver import RequestScopedResolver
from mailsage.api.v1 import campaigns, emails, templates, webhooks
from mailsage.settings import ApiSettings
from mailsage.wiring import ApiServices, api_services


def create_app(
    settings: ApiSettings, services: Callable[[], ApiServices] | None = None
) -> APIGatewayRestResolver:
    """The API; `services` gives its services (default: built from `settings` on first use), e.g. a
    test's with a limiter on its own clock."""
    cors = None
    if settings.allowed_origins:
        first, *rest = settings.allowed_origins
        cors = CORSConfig(
            allow_origin=first,
            extra_origins=rest,
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=rate_limits.EXPOSED_HEADERS,
            max_age=600,
        )
    # Each request sees only itself, also when `mailsage serve` handles several at once.
    # An oversized body is refused before it is parsed (the gate then answers 413).
    parse = partial(body.parse_json, max_bytes=settings.max_request_bytes)
    app = RequestScopedResolver(enable_validation=True, cors=cors, json_body_deserializer=parse)
    # The composition root of the API: the gate hands these services to routes (through the app's
    # context and `Depends`); they are built on the first request, not when the app is created.
    gate = security.gate(settings, services or partial(api_services, settings))
    app.use(middlewares=[security.middleware(gate), idempotency.idempotent])
    errors.install(app, gate)
    app.include_router(emails.router, prefix="/api/v1/emails")
    app.include_router(templates.router, prefix="/api/v1/templates")
    app.include_router(webhooks.router, prefix="/api/v1/webhooks")
    app.include_router(campaigns.router, prefix="/api/v1/campaigns")
    app.include_router(v2.router, prefix="/v2")
    app.include_router(tracking.router)  # /t/... and /u/...: reached from mail, no API key
    docs.register(app, partial(openapi_json, app))  # /openapi.json and /docs: no API key
    return app


def openapi_json(app: APIGatewayRestResolver) -> str:
    """The OpenAPI document of the API, as committed in functions/api/openapi.json."""
    import json

    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    document = json.loads(
        app.get_openapi_json_schema(
            title="MailSage API",
            version="1.0.0",
            description="Send single emails and templated batches, track and control jobs.",
            security_schemes={"bearerAuth": HTTPBearer(bearerFormat="API key")},
            security=[{"bearerAuth": []}],
        )
    )
    # Powertools documents a 422 on every validated route; MailSage answers 400 with its envelope.
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["responses"].pop("422", None)
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        document["components"]["schemas"].pop(name, None)
    add_examples(document)
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def add_examples(document: dict[str, Any]) -> None:
    """Each request body and success reply points at the example of its schema (`api/examples.py`)."""
    from mailsage.api.examples import EXAMPLES

    schemas = document["components"]["schemas"]
    unknown = set(EXAMPLES) - set(schemas)
    if unknown:  # a model renamed or removed: its example must follow
        raise ValueError(f"examples of schemas the document does not have: {sorted(unknown)}")
    document["components"]["examples"] = {name: {"value": value} for name, value in EXAMPLES.items()}
    for operations in document["paths"].values():
        for operation in operations.values():
            media = [operation.get("requestBody", {}).get("content", {}).get("application/json")]
            media += [
                reply.get("content", {}).get("application/json")
                for status, reply in operation["responses"].items()
                if status.startswith("2")
            ]
            for one in media:
                schema = (one or {}).get("schema", {})
                # An optional body is `anyOf: [{$ref}, {type: null}]`: its example is the model's.
                refs = [schema.get("$ref", "")] + [s["$ref"] for s in schema.get("anyOf", []) if "$ref" in s]
                name = next((r for r in refs if r), "").rpartition("/")[2]
                if name in EXAMPLES:
                    one["examples"] = {name: {"$ref": f"#/components/examples/{name}"}}

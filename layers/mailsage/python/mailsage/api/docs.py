"""`GET /openapi.json` (the API's OpenAPI document) and `GET /docs` (Swagger UI over it), on both
runtimes: `mailsage serve` and API Gateway reach the same resolver.

There is no CDN to count on (a laptop offline, a locked-down VPC), so the page loads Swagger UI from
this API: the files Powertools ships in its package (already in the layer), served from `/docs/...`.
No API key is needed for these paths (`api/security.py` exempts exactly `PATHS`); "Authorize" in the
page then sends the caller's key with each request tried.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
# name under /docs/ -> (file in Powertools' swagger_ui package, or None for ours; content type)
_ASSETS: dict[str, tuple[str | None, str]] = {
    "swagger-ui.css": ("swagger-ui.min.css", "text/css; charset=utf-8"),
    "swagger-ui-bundle.js": ("swagger-ui-bundle.min.js", "text/javascript; charset=utf-8"),
    "swagger-init.js": (None, "text/javascript; charset=utf-8"),
}
# `/docs/` too: a typed trailing slash should not meet the API key's 401.
PAGES = (DOCS_PATH, f"{DOCS_PATH}/")
PATHS = frozenset({OPENAPI_PATH, *PAGES, *(f"{DOCS_PATH}/{name}" for name in _ASSETS)})

# The page runs only this API's own files; Swagger UI sets some inline styles and data: images.
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_ASSET_CACHE = "public, max-age=3600"

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>MailSage API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{base}/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{base}/openapi.json"></div>
<script src="{base}/docs/swagger-ui-bundle.js"></script>
<script src="{base}/docs/swagger-init.js"></script>
</body>
</html>
"""

# validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io.
_INIT = """window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    filter: true,
    validatorUrl: null,
    tryItOutEnabled: false
  });
});
"""


def register(app: APIGatewayRestResolver, document: Callable[[], str]) -> None:
    """Add the routes to `app`; `document()` gives the OpenAPI document (built on first request:
    a cold start serving mail does not pay for it)."""
    built = cache(document)

    @app.get(OPENAPI_PATH, include_in_schema=False, compress=True)
    def openapi() -> Response[str]:
        return Response(200, "application/json", served_document(built(), base_path(app)))

    @app.get(DOCS_PATH, include_in_schema=False)
    def docs_page() -> Response[str]:
        headers = {"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"}
        return Response(200, "text/html; charset=utf-8", _PAGE.format(base=base_path(app)), headers)

    @app.get(f"{DOCS_PATH}/<name>", include_in_schema=False, compress=True)
    def docs_asset(name: str) -> Response[str]:
        if name not in _ASSETS:
            return Response(404, "text/plain; charset=utf-8", "not found")
        _, content_type = _ASSETS[name]
        return Response(200, content_type, asset(name), {"Cache-Control": _ASSET_CACHE})


@cache
def asset(name: str) -> str:
    """The text of one of the page's files (read once per process)."""
    packaged, _ = _ASSETS[name]
    if packaged is None:
        return _INIT
    swagger_ui = resources.files("aws_lambda_powertools.event_handler.openapi.swagger_ui")
    return swagger_ui.joinpath(packaged).read_text(encoding="utf-8")


def base_path(app: APIGatewayRestResolver) -> str:
    """The prefix the caller's URL has before the routed path: `/{stage}` on an execute-api URL,
    nothing on a custom domain or locally, so the page's links work behind either."""
    event = app.current_event
    routed = event.path or ""
    seen = event.request_context.path or routed
    return seen[: -len(routed)].rstrip("/") if routed and seen.endswith(routed) else ""


def served_document(document: str, base: str) -> str:
    """The committed document; behind a stage prefix, with that prefix as its server so "Try it
    out" calls the same stage."""
    if not base:
        return document
    parsed = json.loads(document)
    parsed["servers"] = [{"url": base}]
    return json.dumps(parsed, indent=2, sort_keys=True) + "\n"

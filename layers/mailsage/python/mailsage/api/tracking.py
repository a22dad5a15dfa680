"""Routes recipients reach from their mail, without an API key (the URLs are signed):
`GET /t/o/{token}` (open pixel), `GET /t/c/{token}` (tracked link: 302 to the original),
`GET|POST /u/{token}` (one-click unsubscribe, RFC 8058: POST unsubscribes, GET shows a button)."""

from __future__ import annotations

import html
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from mailsage.api.dependencies import Services, visitor
from mailsage.api.security import PUBLIC_PREFIXES
from mailsage.domain.engagement import Visitor
from mailsage.domain.tracking import PIXEL_GIF, location_header
from mailsage.errors import NotFound

router = APIGatewayRouter()
# The routes have no return annotation on purpose: with one, the resolver's response validation
# would serialize the body (a GIF, an HTML page) as JSON.

__all__ = ["PUBLIC_PREFIXES", "router"]
_NO_STORE = {"Cache-Control": "no-store, private"}
Follower = Annotated[Visitor, Depends(visitor)]


def _page(status: int, title: str, text: str, form: str = "") -> Response[str]:
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family:sans-serif;max-width:32em;margin:4em auto'><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{form}</body></html>"
    )
    return Response(status, "text/html; charset=utf-8", body, _NO_STORE)


@router.get("/t/o/<token>", include_in_schema=False)
def open_pixel(token: str, services: Services, follower: Follower):  # type: ignore[no-untyped-def]
    if not services.engagement.opened(token, follower):
        raise NotFound("unknown tracking link")
    return Response(200, "image/gif", PIXEL_GIF, _NO_STORE)


@router.get("/t/c/<token>", include_in_schema=False)
def click(token: str, services: Services, follower: Follower):  # type: ignore[no-untyped-def]
    url = services.engagement.clicked(token, follower)
    if url is None:  # unknown, or a URL that is not a safe redirect: nothing to follow either way
        raise NotFound("unknown tracking link")
    return Response(302, "text/plain", "", {**_NO_STORE, "Location": location_header(url)})


@router.get("/u/<token>", include_in_schema=False)
def unsubscribe_page(token: str, services: Services):  # type: ignore[no-untyped-def]
    email = services.engagement.unsubscribe_address(token)
    if email is None:
        return _page(404, "Link not valid", "This unsubscribe link is not valid.")
    form = (
        "<form method='post'><input type='hidden' name='List-Unsubscribe' value='One-Click'>"
        "<button type='submit'>Unsubscribe</button></form>"
    )
    return _page(200, "Unsubscribe", f"Stop sending mail to {email}?", form)


@router.post("/u/<token>", include_in_schema=False)
def unsubscribe(token: str, services: Services):  # type: ignore[no-untyped-def]
    email = services.engagement.unsubscribe(token)
    if email is None:
        return _page(404, "Link not valid", "This unsubscribe link is not valid.")
    return _page(200, "Unsubscribed", f"{email} will not receive this sender's mail any more.")

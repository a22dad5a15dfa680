"""The AhaSend v2-compatible surface: `/v2/ping` and `/v2/accounts/{account_id}/...`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

if TYPE_CHECKING:
    from mailsage.settings import ApiSettings

# Routes are added by the modules of this package (messages, suppressions, ping).
router = APIGatewayRouter()

from mailsage.api.v2 import messages, ping, suppressions  # noqa: E402, F401  (they register on `router`)


def webhooks_router(settings: ApiSettings) -> APIGatewayRouter:
    """The webhook routes, made per app: they need its settings (webhook queue, private URLs)."""
    from mailsage.api.v2 import webhooks

    return webhooks.router_for(settings)

"""The AhaSend v2-compatible surface: `/v2/ping` and `/v2/accounts/{account_id}/...`."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

# Routes are added by the modules of this package (messages, suppressions, webhooks, ping).
router = APIGatewayRouter()

from mailsage.api.v2 import messages, ping, suppressions, webhooks  # noqa: E402, F401  (they register on `router`)

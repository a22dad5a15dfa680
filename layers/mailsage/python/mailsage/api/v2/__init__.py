"""The AhaSend v2-compatible surface: `/v2/ping` and `/v2/accounts/{account_id}/...`."""

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

# Routes are added by the modules of this package (messages, suppressions, ping).
router = APIGatewayRouter()

from mailsage.api.v2 import messages, ping, suppressions  # noqa: E402, F401  (they register on `router`)

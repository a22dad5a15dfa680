"""`python -m mailsage.api > functions/api/openapi.json` regenerates the committed OpenAPI document."""

import sys

from mailsage.api.app import create_app, openapi_json
from mailsage.settings import ApiSettings

sys.stdout.write(openapi_json(create_app(ApiSettings())))

from __future__ import annotations

import json

from mailsage.api.app import create_app, openapi_json
from mailsage.settings import ApiSettings
from tests.conftest import ROOT

COMMITTED = ROOT / "functions" / "api" / "openapi.json"


def test_the_committed_openapi_document_matches_the_code() -> None:
    generated = openapi_json(create_app(ApiSettings()))
    assert json.loads(COMMITTED.read_text()) == json.loads(generated), (
        "functions/api/openapi.json is out of date: run `make openapi`"
    )


def test_every_route_documents_its_success_status_and_the_error_envelope() -> None:
    document = json.loads(COMMITTED.read_text())
    send = document["paths"]["/api/v1/emails/send"]["post"]["responses"]
    assert set(send) == {"202", "400", "401", "413", "415", "429"}
    assert send["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorEnvelope"
    }
    assert "204" in document["paths"]["/api/v1/templates/{template_id}"]["delete"]["responses"]

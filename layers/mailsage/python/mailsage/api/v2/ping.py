"""`GET /v2/ping`: a health check that also proves the API key works (the contract requires one)."""

from __future__ import annotations

from mailsage.api.v2 import router
from mailsage.api.v2.models import SuccessResponse, responses


@router.get("/ping", responses=responses(200, SuccessResponse), summary="Check the API key")
def ping() -> SuccessResponse:
    return SuccessResponse(message="pong")

"""`/v2/accounts/{account_id}/suppressions`: list, create, delete one address, delete all."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query

from mailsage.api.dependencies import AccountId, Services
from mailsage.api.v2 import router
from mailsage.api.v2.ahasend_names import parse_rfc3339
from mailsage.api.v2.models import (
    CreateSuppressionRequest,
    CreateSuppressionResponse,
    PaginatedSuppressionsResponse,
    PaginationInfo,
    SuccessResponse,
    responses,
    suppression_reply,
)
from mailsage.domain.suppressions import SuppressionQuery

SUPPRESSIONS = "/accounts/<account_id>/suppressions"


@router.get(
    SUPPRESSIONS, responses=responses(200, PaginatedSuppressionsResponse), summary="List suppressions"
)
def list_suppressions(
    account_id: str,
    domain: Annotated[str | None, Query(max_length=253)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    from_time: Annotated[str | None, Query(description="RFC 3339")] = None,
    to_time: Annotated[str | None, Query(description="RFC 3339")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
    after: Annotated[str | None, Query(max_length=128)] = None,
    before: Annotated[str | None, Query(max_length=128)] = None,
    *,
    services: Services,
    account: AccountId,
) -> PaginatedSuppressionsResponse:
    page = services.suppressions.list_suppressions(
        account,
        SuppressionQuery(
            email=email,
            domain=domain,
            from_time=parse_rfc3339(from_time, "from_time").timestamp() if from_time else None,
            to_time=parse_rfc3339(to_time, "to_time").timestamp() if to_time else None,
            limit=limit,
            after=after,
            before=before,
        ),
    )
    return PaginatedSuppressionsResponse(
        data=[suppression_reply(s) for s in page.items],
        pagination=PaginationInfo(
            has_more=page.has_more, next_cursor=page.next_cursor, previous_cursor=page.previous_cursor
        ),
    )


@router.post(
    SUPPRESSIONS, responses=responses(201, CreateSuppressionResponse, 409, 422), summary="Suppress an address"
)
def create_suppression(
    account_id: str, body: CreateSuppressionRequest, services: Services, account: AccountId
) -> Response[CreateSuppressionResponse]:
    suppression = services.suppressions.create(
        account, body.email, body.domain, body.reason, body.expires_at.timestamp()
    )
    reply = CreateSuppressionResponse(data=[suppression_reply(suppression)])
    return Response(201, content_types.APPLICATION_JSON, reply)


@router.delete(
    SUPPRESSIONS, responses=responses(200, SuccessResponse, 404), summary="Remove an address's suppressions"
)
def delete_suppression(
    account_id: str,
    email: Annotated[str, Query(min_length=1, max_length=320)],
    domain: Annotated[str | None, Query(max_length=253)] = None,
    *,
    services: Services,
    account: AccountId,
) -> SuccessResponse:
    deleted = services.suppressions.delete(account, email, domain)
    return SuccessResponse(message=f"deleted {deleted} suppression{'s' if deleted != 1 else ''} of {email}")


@router.delete(
    f"{SUPPRESSIONS}/all", responses=responses(200, SuccessResponse), summary="Remove every suppression"
)
def delete_all_suppressions(
    account_id: str,
    domain: Annotated[str | None, Query(max_length=253)] = None,
    *,
    services: Services,
    account: AccountId,
) -> SuccessResponse:
    deleted = services.suppressions.delete_all(account, domain)
    return SuccessResponse(message=f"deleted {deleted} suppression{'s' if deleted != 1 else ''}")

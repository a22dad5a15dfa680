"""`/v2/accounts/{account_id}/messages`: create, list, get, cancel. Each route makes one domain call;
the gate has already checked that the key belongs to `account_id`."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import EmailStr

from mailsage.api.dependencies import AccountId, BaseUrl, Services
from mailsage.api.v2 import router
from mailsage.api.v2.ahasend_names import not_cancellable, parse_rfc3339, parse_status_filter, split_list
from mailsage.api.v2.models import (
    CreateMessageRequest,
    CreateMessageResponse,
    Message,
    PaginatedMessagesResponse,
    PaginationInfo,
    SuccessResponse,
    created_reply,
    draft,
    message_reply,
    responses,
    summary_reply,
)
from mailsage.domain.messages import MessageListQuery, NotCancellable

MESSAGES = "/accounts/<account_id>/messages"


@router.post(
    MESSAGES,
    responses=responses(202, CreateMessageResponse, 409, 422),
    summary="Send messages (one per recipient)",
)
def create_message(
    account_id: str, body: CreateMessageRequest, services: Services, account: AccountId
) -> Response[CreateMessageResponse]:
    created = services.messages.create(account, draft(body))
    return Response(202, content_types.APPLICATION_JSON, created_reply(created))


@router.get(MESSAGES, responses=responses(200, PaginatedMessagesResponse), summary="List and search messages")
def list_messages(
    account_id: str,
    status: Annotated[
        str | None, Query(max_length=1000, description="Comma-separated, e.g. Bounced,Failed")
    ] = None,
    # Addresses, as AhaSend's contract has them (`format: email`): anything else is a 400.
    sender: Annotated[EmailStr | None, Query(max_length=320)] = None,
    recipient: Annotated[EmailStr | None, Query(max_length=320)] = None,
    subject: Annotated[str | None, Query(max_length=998)] = None,
    message_id_header: Annotated[str | None, Query(max_length=400)] = None,
    tags: Annotated[list[str] | None, Query(description="Comma-separated (at most 20)")] = None,
    from_time: Annotated[str | None, Query(description="RFC 3339")] = None,
    to_time: Annotated[str | None, Query(description="RFC 3339")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
    after: Annotated[str | None, Query(max_length=400)] = None,
    before: Annotated[str | None, Query(max_length=400)] = None,
    cursor: Annotated[str | None, Query(max_length=400, description="Legacy name of `after`")] = None,
    *,
    services: Services,
    account: AccountId,
) -> PaginatedMessagesResponse:
    page = services.messages.list_messages(
        account,
        MessageListQuery(
            statuses=parse_status_filter(status) if status else (),
            sender=sender,
            recipient=recipient,
            subject=subject,
            message_id_header=message_id_header,
            tags=split_list(tags or ()),
            from_time=parse_rfc3339(from_time, "from_time").timestamp() if from_time else None,
            to_time=parse_rfc3339(to_time, "to_time").timestamp() if to_time else None,
            limit=limit,
            after=after or cursor,
            before=before,
        ),
    )
    return PaginatedMessagesResponse(
        data=[summary_reply(v, account) for v in page.items],
        pagination=PaginationInfo(
            has_more=page.has_more, next_cursor=page.next_cursor, previous_cursor=page.previous_cursor
        ),
    )


@router.get(
    f"{MESSAGES}/<message_id>",
    responses=responses(200, Message, 404),
    summary="Get a message with its content",
)
def get_message(
    account_id: str, message_id: str, services: Services, account: AccountId, base_url: BaseUrl
) -> Message:
    return message_reply(services.messages.get(account, message_id, base_url), account)


@router.delete(
    f"{MESSAGES}/<message_id>/cancel",
    responses=responses(200, SuccessResponse, 404),
    summary="Cancel a message not yet attempted",
)
def cancel_message(
    account_id: str, message_id: str, services: Services, account: AccountId
) -> SuccessResponse:
    try:
        services.messages.cancel(account, message_id)
    except NotCancellable as refused:
        raise not_cancellable(refused) from None
    return SuccessResponse(message="the message was cancelled before its first attempt")

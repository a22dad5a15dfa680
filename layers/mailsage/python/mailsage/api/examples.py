"""One example of each request body and success reply, by the name of its schema in the OpenAPI
document. `app.openapi_json` puts them under `components/examples` and points every operation's
request body and success reply at its example, so /docs shows (and "Try it out" pre-fills) them.

Only imported when the document is built. `tests/integration/test_api_docs.py` validates each
against its schema and requires one for every operation, so a changed model cannot leave a stale
or missing example behind.
"""

from __future__ import annotations

from typing import Any

ACCOUNT = "3b9f6a2e-8c1d-4e5f-9a7b-2c4d6e8f0a1b"
JOB = "5a0d3c6e-1f2b-4c8d-9e7a-6b5c4d3e2f10"
MESSAGE = "8e2f4a6c-0b1d-4f3e-a5c7-9d8b6a4c2e01"
MESSAGE_2 = "c71a9e3b-5d2f-4a60-b8e4-1f0d2c3b4a59"
TEMPLATE = "2d4f6b8a-0c1e-4a3b-8d5f-7e9a1b3c5d70"
WEBHOOK = "9c8b7a6d-5e4f-4a3b-9c2d-1e0f9a8b7c65"
DELIVERY = "msg_2f1e0d9c8b7a6f5e4d3c2b1a"
SUPPRESSION = "4e6a8c0b-2d4f-4b6d-8f0a-3c5e7a9b1d28"
WHEN = "2026-12-06T10:15:30Z"
LATER = "2026-12-06T10:15:32Z"
SENDER = "hello@example.com"

_TEMPLATE = {
    "template_id": TEMPLATE,
    "name": "welcome",
    "subject": "Welcome, {{ name }}",
    "html": "<p>Hi {{ name }}, your plan is {{ plan }}.</p>",
    "text": "Hi {{ name }}, your plan is {{ plan }}.",
    "created_at": WHEN,
    "updated_at": WHEN,
}

_V1_WEBHOOK = {
    "id": WEBHOOK,
    "name": "delivery events",
    "url": "https://hooks.example.com/mailsage",
    "enabled": True,
    "events": ["message.delivered", "message.bounced"],
    "scope": "global",
    "domains": [],
    "created_at": WHEN,
    "updated_at": WHEN,
    "success_count": 12,
    "error_count": 1,
    "errors_since_last_success": 0,
    "last_request_at": LATER,
    "disabled_reason": None,
    "signing": "standard",
}

# What a webhook's "send test event" posts: a real event's shape, made-up values, "test": true.
_TEST_PAYLOAD = {
    "type": "message.bounced",
    "webhook_id": WEBHOOK,
    "timestamp": WHEN,
    "data": {
        "account_id": ACCOUNT,
        "event": "on_bounced",
        "from": "sender@example.com",
        "recipient": "recipient@example.com",
        "subject": "MailSage test event",
        "message_id_header": f"<{MESSAGE}@example.com>",
        "id": MESSAGE,
        "is_bot": False,
    },
    "test": True,
}
_TEST_EVENT = {
    "delivery_id": DELIVERY,
    "webhook_id": WEBHOOK,
    "event_type": "message.bounced",
    "status": "queued",
}

_V2_WEBHOOK = {
    "object": "webhook",
    "id": WEBHOOK,
    "created_at": WHEN,
    "updated_at": WHEN,
    "name": "delivery events",
    "url": "https://hooks.example.com/mailsage",
    "enabled": True,
    "on_reception": False,
    "on_delivered": True,
    "on_transient_error": False,
    "on_failed": True,
    "on_bounced": True,
    "on_suppressed": False,
    "on_opened": False,
    "on_clicked": False,
    "on_suppression_created": False,
    "on_dns_error": False,
    "scope": "global",
    "domains": [],
    "success_count": 12,
    "error_count": 1,
    "errors_since_last_success": 0,
    "last_request_at": LATER,
}

_PAYLOAD = {
    "type": "message.delivered",
    "timestamp": LATER,
    "data": {"message_id": MESSAGE, "recipient": "ada@example.org", "status": "delivered"},
}
_ATTEMPT = {"time": LATER, "status_code": 200, "error": None, "duration_ms": 84.2, "replay": False}
_V1_DELIVERY = {
    "id": DELIVERY,
    "event_type": "message.delivered",
    "status": "succeeded",
    "created_at": LATER,
    "updated_at": LATER,
    "attempts": [_ATTEMPT],
    "next_attempt_at": None,
    "payload": _PAYLOAD,
}

_SUPPRESSION = {
    "object": "suppression",
    "id": SUPPRESSION,
    "created_at": WHEN,
    "email": "bounced@example.org",
    "domain": "",
    "reason": "hard bounce",
    "expires_at": "2027-12-06T10:15:30Z",
}

_MESSAGE_SUMMARY = {
    "object": "message",
    "created_at": WHEN,
    "updated_at": LATER,
    "sent_at": LATER,
    "delivered_at": LATER,
    "retain_until": "2027-03-06T10:15:30Z",
    "direction": "outbound",
    "is_bounce_notification": False,
    "bounce_classification": "",
    "delivery_attempts": [
        {"time": WHEN, "log": "accepted", "status": "queued"},
        {"time": LATER, "log": "250 2.0.0 OK", "status": "sent"},
    ],
    "message_id": f"<{MESSAGE}@example.com>",
    "id": MESSAGE,
    "subject": "Your receipt",
    "tags": ["receipts"],
    "sender": SENDER,
    "recipient": "ada@example.org",
    "status": "Delivered",
    "num_attempts": 1,
    "click_count": 0,
    "open_count": 1,
    "reference_message_id": None,
    "domain_id": "example.com",
    "account_id": ACCOUNT,
}

_RAW = (
    f"From: {SENDER}\r\nTo: ada@example.org\r\nSubject: Your receipt\r\n"
    f"Message-ID: <{MESSAGE}@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThanks!\r\n"
)

_PAGINATION = {"has_more": True, "next_cursor": MESSAGE}

EXAMPLES: dict[str, Any] = {
    # -- v1 requests
    "SendRequest": {
        "recipient": {"email": "ada@example.org", "name": "Ada", "variables": {"name": "Ada"}},
        "from": SENDER,
        "subject": "Hello {{ name }}",
        "body": "Hi {{ name }}, this is your first MailSage email.",
    },
    "BatchRequest": {
        "template_id": TEMPLATE,
        "from": SENDER,
        "campaign_id": "spring-launch",
        "recipients": [
            {"email": "ada@example.org", "variables": {"name": "Ada", "plan": "pro"}},
            {"email": "grace@example.org", "variables": {"name": "Grace", "plan": "team"}},
        ],
    },
    "ControlRequest": {"action": "pause"},
    "TemplateIn": {k: _TEMPLATE[k] for k in ("name", "subject", "html", "text")},
    "PreviewRequest": {"variables": {"name": "Ada", "plan": "pro"}},
    "WebhookIn": {
        "name": "delivery events",
        "url": "https://hooks.example.com/mailsage",
        "events": ["message.delivered", "message.bounced"],
    },
    "WebhookPatch": {"enabled": False},
    # -- v1 replies
    "SendReply": {"job_id": JOB, "message_id": MESSAGE, "status": "queued"},
    "BatchReply": {
        "job_id": JOB,
        "status": "queued",
        "campaign_id": "spring-launch",
        "accepted": 2,
        "rejected": 1,
        "messages": [
            {"index": 0, "email": "ada@example.org", "message_id": MESSAGE, "status": "queued"},
            {"index": 2, "email": "grace@example.org", "message_id": MESSAGE_2, "status": "queued"},
        ],
        "errors": [
            {
                "index": 1,
                "email": "not-an-address",
                "code": "invalid_recipient",
                "message": "not a valid email address",
            }
        ],
    },
    "JobReply": {
        "job_id": JOB,
        "kind": "batch",
        "state": "running",
        "campaign_id": "spring-launch",
        "total": 2,
        "counts": {
            "queued": 1,
            "scheduled": 0,
            "sending": 0,
            "sent": 1,
            "delivered": 0,
            "deferred": 0,
            "bounced": 0,
            "complained": 0,
            "failed": 0,
            "suppressed": 0,
            "cancelled": 0,
            "expired": 0,
        },
        "progress": {"processed": 1, "total": 2, "percent": 50.0},
        "dead_letters": [],
        "created_at": WHEN,
        "updated_at": LATER,
        "started_at": LATER,
        "finished_at": None,
        "paused_reason": None,
        "throttled": 0,
        "send_rate": 14.0,
    },
    "TemplateReply": _TEMPLATE,
    "TemplateList": {"data": [_TEMPLATE], "next_cursor": None},
    "PreviewReply": {
        "subject": "Welcome, Ada",
        "html": "<p>Hi Ada, your plan is pro.</p>",
        "text": "Hi Ada, your plan is pro.",
    },
    "CampaignReply": {
        "campaign_id": "spring-launch",
        "jobs": 2,
        "recipients": 1000,
        "queued": 0,
        "sent": 990,
        "delivered": 980,
        "bounced": 10,
        "complained": 1,
        "failed": 2,
        "suppressed": 8,
        "opened": 412,
        "clicked": 97,
        "unsubscribed": 3,
        "rates": {
            "delivery_rate": 0.9899,
            "bounce_rate": 0.0101,
            "complaint_rate": 0.001,
            "open_rate": 0.4204,
            "click_rate": 0.099,
            "unsubscribe_rate": 0.0031,
        },
    },
    "WebhookReply": _V1_WEBHOOK,
    "WebhookCreatedReply": {**_V1_WEBHOOK, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
    "WebhookList": {"data": [_V1_WEBHOOK], "next_cursor": None},
    "DeliveryList": {"data": [_V1_DELIVERY], "next_cursor": None},
    "ReplayReply": {"delivery_id": DELIVERY, "webhook_id": WEBHOOK, "status": "queued"},
    "WebhookTestIn": {"event_type": "message.bounced"},
    "TestEventReply": {**_TEST_EVENT, "payload": _TEST_PAYLOAD},
    # -- v2 requests
    "CreateMessageRequest": {
        "from": {"email": SENDER, "name": "Example"},
        "recipients": [{"email": "ada@example.org", "name": "Ada", "substitutions": {"first": "Ada"}}],
        "subject": "Your receipt",
        "text_content": "Thanks, {{ first }}!",
        "html_content": "<p>Thanks, {{ first }}!</p>",
        "tags": ["receipts"],
    },
    "CreateSuppressionRequest": {
        "email": "bounced@example.org",
        "reason": "hard bounce",
        "expires_at": "2027-12-06T10:15:30Z",
    },
    "CreateWebhookRequest": {
        "name": "delivery events",
        "url": "https://hooks.example.com/mailsage",
        "scope": "global",
        "on_delivered": True,
        "on_failed": True,
        "on_bounced": True,
    },
    "UpdateWebhookRequest": {"enabled": False},
    # -- v2 replies
    "SuccessResponse": {"message": "pong"},
    "CreateMessageResponse": {
        "object": "list",
        "data": [
            {
                "object": "message",
                "id": f"<{MESSAGE}@example.com>",
                "recipient": {"email": "ada@example.org", "name": "Ada", "substitutions": {"first": "Ada"}},
                "status": "queued",
                "error": None,
            }
        ],
    },
    "Message": {
        **_MESSAGE_SUMMARY,
        "content": _RAW,
        "content_parsed": {
            "parts": [{"content_type": "text/plain", "content": "Thanks!\r\n"}],
            "attachments": [],
            "headers": {"Subject": ["Your receipt"], "To": ["ada@example.org"]},
        },
    },
    "PaginatedMessagesResponse": {"object": "list", "data": [_MESSAGE_SUMMARY], "pagination": _PAGINATION},
    "CreateSuppressionResponse": {"object": "list", "data": [_SUPPRESSION]},
    "PaginatedSuppressionsResponse": {
        "object": "list",
        "data": [_SUPPRESSION],
        "pagination": {"has_more": False},
    },
    "Webhook": _V2_WEBHOOK,
    "CreatedWebhook": {**_V2_WEBHOOK, "secret": "c2VjcmV0LXNpZ25pbmcta2V5LWV4YW1wbGU="},
    "PaginatedWebhooksResponse": {"object": "list", "data": [_V2_WEBHOOK], "pagination": {"has_more": False}},
    "PaginatedWebhookDeliveriesResponse": {
        "object": "list",
        "data": [{**_V1_DELIVERY, "object": "webhook_delivery", "webhook_id": WEBHOOK}],
        "pagination": {"has_more": False},
    },
    "WebhookTestRequest": {"event_type": "message.bounced"},
    "WebhookTestResponse": {"object": "webhook_test_event", **_TEST_EVENT, "payload": _TEST_PAYLOAD},
    "ReplayWebhookDeliveryResponse": {
        "object": "webhook_delivery_replay",
        "delivery_id": DELIVERY,
        "webhook_id": WEBHOOK,
        "status": "queued",
    },
    # -- errors
    "ErrorEnvelope": {"error": {"code": "not_found", "message": f"job {JOB} not found"}},
    "ErrorResponse": {"message": "Invalid API key"},
}

"""Shape local traffic into the events AWS would deliver: API Gateway REST proxy events for HTTP
requests, SQS events for queue messages."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mailsage.ports import Received

QUEUE_ARN = "arn:aws:sqs:local:000000000000:mailsage-send"


def api_gateway_event(
    method: str, raw_path: str, headers: dict[str, str], body: bytes, source_ip: str = "127.0.0.1"
) -> dict[str, Any]:
    url = urlsplit(raw_path)
    query = parse_qs(url.query, keep_blank_values=True)
    try:
        text: str | None = body.decode("utf-8") if body else None
        is_base64 = False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode(), True
    return {
        "resource": url.path,
        "path": url.path,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "httpMethod": method,
            "path": url.path,
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "resourcePath": url.path,
            "stage": "local",
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent", "")},
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


def sqs_event(received: Sequence[Received]) -> dict[str, Any]:
    now = str(int(time.time() * 1000))
    records = []
    for r in received:
        body = json.dumps(r.body)
        records.append(
            {
                "messageId": r.message_id,
                "receiptHandle": r.receipt,
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": str(r.receive_count),
                    "SentTimestamp": now,
                    "SenderId": "local",
                    "ApproximateFirstReceiveTimestamp": now,
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": "local",
            }
        )
    return {"Records": records}

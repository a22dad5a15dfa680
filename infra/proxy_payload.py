"""How large a request body the api function can be given on AWS (plain Python, no CDK).

The REST API hands every body to the function base64-encoded (binary media type `*/*`: exactly 4/3
of the bytes, whatever they are; as JSON-escaped text a control character would take 6 bytes),
inside a proxy event that Lambda refuses above its 6 MB synchronous payload, before MailSage could
answer 413. The envelope margin covers the rest of the event, each part at most doubled by JSON
escaping: the headers (at most 10,240 bytes at a REST API) twice (headers, multiValueHeaders), the
URL (at most 10,240 characters for a regional API) up to three times (path, requestContext.path,
the proxy path parameter; its query string twice), about 100 KiB in all, plus requestContext's
own fields.
"""

from __future__ import annotations

LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024  # 6,291,456
PROXY_EVENT_ENVELOPE_BYTES = 128 * 1024
# The largest body whose base64 form fits beside the envelope: 4,620,288 bytes.
MAX_PROXY_BODY_BYTES = (LAMBDA_SYNC_PAYLOAD_BYTES - PROXY_EVENT_ENVELOPE_BYTES) // 4 * 3

"""A 100-recipient campaign through `mailsage serve`: some bounce at the sink, some recipients open
and click, one unsubscribes with the one-click URL. The campaign's stats match exactly, and a second
batch to the same list skips the bounced and unsubscribed addresses as `suppressed`."""

from __future__ import annotations

import re
from typing import Any

import requests

from tests.conftest import wait_until
from tests.e2e.conftest import LocalServer

BOUNCING = [f"bounce-{i}@example.com" for i in range(5)]
READERS = [f"reader-{i}@example.com" for i in range(95)]
LIST = READERS[:40] + BOUNCING + READERS[40:]  # 100 addresses, bounces in the middle
HTML = '<html><body><p>Hello {{ name }}, <a href="https://shop.example/spring">see the sale</a></p></body></html>'


def send_batch(server: LocalServer) -> dict[str, Any]:
    reply = server.call(
        "POST",
        "/api/v1/emails/batch",
        {
            "recipients": [{"email": e, "variables": {"name": e.split("@")[0]}} for e in LIST],
            "subject": "Spring sale",
            "html": HTML,
            "from": "Shop <news@shopmail.com>",
            "campaign_id": "spring-sale",
            "tracking": {"open": True, "click": True},
        },
    )
    assert reply.status_code == 202, reply.text
    return reply.json()


def wait_for_counts(server: LocalServer, job_id: str, expected: dict[str, int], timeout: float = 120) -> None:
    """The sink's delivery notifications are applied asynchronously by the events loop."""
    seen: list[dict[str, int]] = []

    def reached() -> bool:
        seen.append({k: v for k, v in server.job(job_id)["counts"].items() if v})
        return seen[-1] == expected

    if wait_until(reached, timeout):
        return
    counts = seen[-1]
    raise AssertionError(f"job {job_id} counts {counts}, expected {expected}")


def mail_by_recipient(server: LocalServer) -> dict[str, Any]:
    return {str(m["To"]): m for m in server.received()}


def test_campaign_stats_match_what_happened_and_the_next_batch_skips_suppressed(server: LocalServer) -> None:
    first = send_batch(server)
    server.wait_for(first["job_id"], {"completed"})
    wait_for_counts(server, first["job_id"], {"delivered": 95, "bounced": 5})
    mails = mail_by_recipient(server)
    assert sorted(mails) == sorted(READERS)  # the sink refused every bounce-* address

    openers, clickers, leaver = READERS[:20], READERS[:7], READERS[50]
    for email in openers:
        html = mails[email].get_body(("html",)).get_content()
        pixel = re.search(r'<img src="([^"]+/t/o/[^"]+)"', html)
        assert pixel is not None, html
        for _ in range(2 if email in clickers else 1):  # repeated opens count once in the stats
            reply = requests.get(pixel.group(1), timeout=10)
            assert reply.status_code == 200 and reply.headers["Content-Type"] == "image/gif"
        if email in clickers:
            link = re.search(r'href="([^"]+/t/c/[^"]+)"', html)
            assert link is not None
            reply = requests.get(link.group(1), allow_redirects=False, timeout=10)
            assert reply.status_code == 302
            assert reply.headers["Location"] == "https://shop.example/spring"
    unsubscribe = str(mails[leaver]["List-Unsubscribe"]).strip("<>")
    assert mails[leaver]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    reply = requests.post(
        unsubscribe,
        data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert reply.status_code == 200

    stats = server.call("GET", "/api/v1/campaigns/spring-sale")
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert {k: body[k] for k in ("jobs", "recipients", "sent", "delivered", "bounced", "complained")} == {
        "jobs": 1,
        "recipients": 100,
        "sent": 100,
        "delivered": 95,
        "bounced": 5,
        "complained": 0,
    }
    assert {k: body[k] for k in ("failed", "suppressed", "opened", "clicked", "unsubscribed")} == {
        "failed": 0,
        "suppressed": 0,
        "opened": 20,
        "clicked": 7,
        "unsubscribed": 1,
    }
    assert body["rates"]["bounce_rate"] == 0.05
    assert body["rates"]["open_rate"] == round(20 / 95, 4)
    assert body["rates"]["click_rate"] == round(7 / 95, 4)

    # The same list again: the bounced and the unsubscribed are suppressed, never sent.
    outbox_before = len(server.outbox())
    second = send_batch(server)
    server.wait_for(second["job_id"], {"completed"})
    wait_for_counts(server, second["job_id"], {"delivered": 94, "suppressed": 6})
    assert len(server.outbox()) == outbox_before + 94
    suppressed = server.call(
        "GET", f"/v2/accounts/{server.env['MAILSAGE_DEV_ACCOUNT_ID']}/messages?status=suppressed&limit=100"
    )
    assert suppressed.status_code == 200, suppressed.text
    assert sorted(m["recipient"] for m in suppressed.json()["data"]) == sorted([*BOUNCING, leaver])

    body = server.call("GET", "/api/v1/campaigns/spring-sale").json()
    assert (body["jobs"], body["recipients"], body["sent"], body["suppressed"]) == (2, 200, 194, 6)
    assert (body["delivered"], body["bounced"], body["opened"], body["unsubscribed"]) == (189, 5, 20, 1)

"""Contract of a webhook's signing scheme in the WebhookStore, on every store adapter: it is stored
and read back as given, kept by the attempt counter's write, and a webhook put without one is
literal (how every webhook stored before the scheme signed)."""

from __future__ import annotations

import uuid

import pytest

from mailsage.domain.models import Webhook, WebhookSigning
from mailsage.ports import Store

T0 = 1_700_000_000.0


def webhook(**changes: object) -> Webhook:
    hook = Webhook(
        id=str(uuid.uuid4()),
        account_id="acc_a",
        name="Main endpoint",
        url="https://hooks.acme.test/mailsage",
        secret="whsec_c2VjcmV0LXNlY3JldA==",
        enabled=True,
        events=["message.delivered"],
        created_at=T0,
        updated_at=T0,
    )
    for name, value in changes.items():
        setattr(hook, name, value)
    return hook


def test_a_webhook_without_a_scheme_is_literal(store: Store) -> None:
    hook = webhook()
    store.put_webhook(hook)
    found = store.get_webhook("acc_a", hook.id)
    assert found is not None and found.signing is WebhookSigning.LITERAL


@pytest.mark.parametrize("signing", list(WebhookSigning))
def test_the_scheme_roundtrips_through_get_and_list(store: Store, signing: WebhookSigning) -> None:
    hook = webhook(signing=signing)
    store.put_webhook(hook)
    found = store.get_webhook("acc_a", hook.id)
    assert found == hook and found is not None and found.signing is signing
    listed, _ = store.list_webhooks("acc_a", 10, None)
    assert [w.signing for w in listed] == [signing]


@pytest.mark.parametrize("ok", [True, False])
def test_counting_an_attempt_keeps_the_scheme(store: Store, ok: bool) -> None:
    hook = webhook(signing=WebhookSigning.STANDARD)
    store.put_webhook(hook)
    counted = store.record_webhook_attempt("acc_a", hook.id, ok, T0 + 1, disable_after=1)
    assert counted is not None and counted.signing is WebhookSigning.STANDARD
    assert counted.enabled is ok  # the failure disabled it, and the scheme survived that write too
    found = store.get_webhook("acc_a", hook.id)
    assert found is not None and found.signing is WebhookSigning.STANDARD


def test_replacing_a_webhook_replaces_its_scheme(store: Store) -> None:
    hook = webhook(signing=WebhookSigning.STANDARD)
    store.put_webhook(hook)
    store.put_webhook(webhook(id=hook.id, signing=WebhookSigning.LITERAL))
    found = store.get_webhook("acc_a", hook.id)
    assert found is not None and found.signing is WebhookSigning.LITERAL

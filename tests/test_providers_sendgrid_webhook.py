"""The SendGrid provider's Event Webhook parser: signature, age, and SendGrid's event names in
the neutral vocabulary (no server: the parser on its own; the route is in test_serve.py)."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from newsletter.deliver.events import EventKind
from newsletter.deliver.providers.base import WebhookRefused
from newsletter.deliver.providers.sendgrid_webhook import SendGridWebhook, load_public_key
from newsletter.errors import ConfigError
from tests.support.serve import keypair, signed_headers

ISSUE = "2011-05"


def parse(items, *, now: float | None = None, hook=None, private=None):
    if hook is None:
        private, public = keypair()
        hook = SendGridWebhook(load_public_key(public))
    body = json.dumps(items).encode()
    stamp = time.time()
    headers = signed_headers(private, body, str(int(stamp)))
    return hook.parse(headers, body, now if now is not None else stamp)


def test_every_sendgrid_event_name_in_the_neutral_vocabulary() -> None:
    names = {"processed": "queued", "delivered": "delivered", "deferred": "deferred",
             "bounce": "bounced", "dropped": "rejected", "open": "opened", "click": "clicked",
             "spamreport": "complained", "unsubscribe": "unsubscribed",
             "group_unsubscribe": "unsubscribed", "group_resubscribe": "unknown"}
    items = [{"sg_event_id": f"id-{n}", "event": n, "email": "Ann@Example.org",
              "timestamp": 1305727500, "issue": ISSUE} for n in names]
    events, invalid = parse(items)
    assert invalid == 0
    assert {e.provider_type: str(e.kind) for e in events} == names
    first = events[0]
    assert first.provider == "sendgrid" and first.event_id == "id-processed"
    assert first.email == "ann@example.org" and first.issue == ISSUE
    assert first.timestamp == dt.datetime(2011, 5, 18, 14, 5, tzinfo=dt.UTC)


def test_bounce_details_click_url_and_blocked_is_temporary() -> None:
    events, _ = parse([
        {"sg_event_id": "b1", "event": "bounce", "email": "a@example.org", "issue": ISSUE,
         "type": "bounce", "reason": "550 5.1.1 no such user"},
        {"sg_event_id": "b2", "event": "bounce", "email": "b@example.org", "issue": ISSUE,
         "type": "blocked", "reason": "421 try later"},
        {"sg_event_id": "c1", "event": "click", "email": "c@example.org", "issue": ISSUE,
         "url": "https://citiesofmigration.ca/?utm_source=newsletter"},
    ])
    hard, blocked, click = events
    assert hard.kind is EventKind.BOUNCED and not hard.temporary
    assert hard.reason == "550 5.1.1 no such user"
    assert blocked.kind is EventKind.BOUNCED and blocked.temporary
    assert click.kind is EventKind.CLICKED
    assert click.url == "https://citiesofmigration.ca/?utm_source=newsletter"


def test_the_issue_of_an_event() -> None:
    base = {"event": "delivered", "email": "a@example.org"}
    events, _ = parse([
        {**base, "sg_event_id": "1", "issue": ISSUE},
        {**base, "sg_event_id": "2", "custom_args": {"issue": "2011-06"}},
        {**base, "sg_event_id": "3", "category": ["newsletter", "2011-07"]},
        {**base, "sg_event_id": "4", "issue": ISSUE, "test": "1", "category": [ISSUE]},
        {**base, "sg_event_id": "5", "custom_args": {"issue": ISSUE, "test": "1"}},
        {**base, "sg_event_id": "6", "transactional": "confirm", "category": ["confirm"]},
        {**base, "sg_event_id": "7"},
    ])
    assert [e.issue for e in events] == [ISSUE, "2011-06", "2011-07", None, None, None, None]


def test_unreadable_items_are_counted_not_raised() -> None:
    events, invalid = parse([
        {"sg_event_id": "ok", "event": "open", "email": "a@example.org"},
        {"event": "open", "email": "a@example.org"},  # no id
        {"sg_event_id": "x", "event": "open", "email": "not an address"},
        "a string", 7, None,
    ])
    assert [e.event_id for e in events] == ["ok"] and invalid == 5


def test_refusals() -> None:
    private, public = keypair()
    hook = SendGridWebhook(load_public_key(public))
    body = b"[]"
    now = time.time()
    with pytest.raises(WebhookRefused) as caught:
        hook.parse({}, body, now)
    assert caught.value.status == 403
    stale = signed_headers(private, body, str(int(now) - 3600))
    with pytest.raises(WebhookRefused, match="stale"):
        hook.parse(stale, body, now)
    other, _ = keypair()
    with pytest.raises(WebhookRefused, match="bad signature"):
        hook.parse(signed_headers(other, body, str(int(now))), body, now)
    for bad in (b"{not json", b'{"event": "open"}'):
        with pytest.raises(WebhookRefused) as caught:
            hook.parse(signed_headers(private, bad, str(int(now))), bad, now)
        assert caught.value.status == 400
    unconfigured = SendGridWebhook(None)
    assert "SENDGRID_WEBHOOK_PUBLIC_KEY" in unconfigured.problem
    with pytest.raises(WebhookRefused) as caught:
        unconfigured.parse(signed_headers(private, body, str(int(now))), body, now)
    assert caught.value.status == 403


def test_public_key_forms() -> None:
    _, public = keypair()
    pem = "-----BEGIN PUBLIC KEY-----\n" + public + "\n-----END PUBLIC KEY-----\n"
    assert load_public_key(public) is not None and load_public_key(pem) is not None
    assert load_public_key("  ") is None
    with pytest.raises(ConfigError, match="SENDGRID_WEBHOOK_PUBLIC_KEY"):
        load_public_key("bm90IGEga2V5")

"""`newsletter serve` against the real waitress server on 127.0.0.1: unsubscribe (page, one-click,
forged tokens, key rotation), double opt-in, signed SendGrid webhooks, hostile input, limits."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter import tokens
from newsletter.cli import main
from newsletter.config import Settings, load_settings
from newsletter.deliver.events import EventKind
from newsletter.store import Store, Subscriber, open_store
from newsletter.web.app import FORM_LIMIT, WEBHOOK_LIMIT, create_app
from tests.support.serve import call, form, keypair, running, sign, signed_headers

ONE_CLICK = "List-Unsubscribe=One-Click"
ANN, BOB = "ann@example.org", "bob@example.org"


@dataclass
class Site:
    base: str
    settings: Settings
    private_key: object

    def db(self) -> Store:
        return open_store(self.settings.db_path)

    def add(self, *emails: str, status: str = "active") -> None:
        with self.db() as db, db.transaction() as tx:
            for email in emails:
                tx.subscribers.add(email, status=status, consent_source="test")

    def get(self, email: str) -> Subscriber | None:
        with self.db() as db:
            return db.subscribers.get(email)

    def status(self, email: str) -> str | None:
        found = self.get(email)
        return found.status if found else None

    def unsubscribe_path(self, email: str) -> str:
        return "/unsubscribe?t=" + token_of(tokens.unsubscribe_url(self.settings, email))

    def webhook(self, events, *, timestamp: str | None = None, key=None, headers=None):
        body = json.dumps(events).encode()
        ts = timestamp or str(int(time.time()))
        sent = signed_headers(key or self.private_key, body, ts)
        sent.update(headers or {})
        return call(self.base, "POST", "/webhooks/sendgrid", body, sent)


def token_of(url: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["t"][0]


@pytest.fixture
def site(project: Path, monkeypatch: pytest.MonkeyPatch):
    private, public = keypair()
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", public)
    settings = load_settings(project / "newsletter.toml")
    with running(create_app(settings)) as base:
        yield Site(base, settings, private)


# -- unsubscribe ------------------------------------------------------------------------------

def test_get_shows_a_page_naming_the_address_and_changes_nothing(site: Site) -> None:
    site.add(ANN)
    reply = call(site.base, "GET", site.unsubscribe_path(ANN))
    assert reply.status == 200
    assert ANN in reply.body and site.settings.name in reply.body
    assert '<form method="post"' in reply.body and "<button" in reply.body
    assert site.status(ANN) == "active"  # link scanners prefetch GETs
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
    assert reply.headers["cache-control"] == "no-store"


def test_one_click_post_unsubscribes_at_once(site: Site) -> None:
    site.add(ANN, BOB)
    reply = call(site.base, "POST", site.unsubscribe_path(ANN), ONE_CLICK)
    assert reply.status == 200
    assert "unsubscribed" in reply.body.lower() and ANN in reply.body
    ann = site.get(ANN)
    assert ann.status == "unsubscribed" and ann.unsubscribed_at
    assert "one-click" in ann.status_reason
    assert site.status(BOB) == "active"


def test_the_pages_button_unsubscribes_too(site: Site) -> None:
    site.add(ANN)
    reply = call(site.base, "POST", site.unsubscribe_path(ANN), form(confirm="yes"))
    assert reply.status == 200
    assert site.status(ANN) == "unsubscribed"


@pytest.mark.slow
def test_one_click_is_idempotent(site: Site) -> None:
    site.add(ANN)
    first = call(site.base, "POST", site.unsubscribe_path(ANN), ONE_CLICK)
    before = site.get(ANN)
    time.sleep(1.1)  # a second later: a rewrite would change the stored time
    second = call(site.base, "POST", site.unsubscribe_path(ANN), ONE_CLICK)
    assert first.status == second.status == 200
    after = site.get(ANN)
    assert after.status == "unsubscribed"
    assert after.unsubscribed_at == before.unsubscribed_at
    conn = site.db()
    assert sum(conn.subscribers.counts().values()) == 1
    conn.close()


def test_unsubscribe_of_an_unknown_address_is_recorded(site: Site) -> None:
    # A signed link for an address since deleted: it must stay unsendable if re-imported.
    reply = call(site.base, "POST", site.unsubscribe_path("gone@example.org"), ONE_CLICK)
    assert reply.status == 200
    assert site.status("gone@example.org") == "unsubscribed"


def _forgeries(site: Site) -> dict[str, str]:
    good = token_of(tokens.unsubscribe_url(site.settings, ANN))
    head, sig = good.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    other = tokens.make_token(ANN, purpose="unsubscribe", list_id=site.settings.list_id,
                              secret="not-our-secret")
    return {
        "truncated": good[:-4],
        "head only": head,
        "signature altered": f"{head}.{flipped}",
        "other key": other,
        "confirm purpose": token_of(tokens.confirm_url(site.settings, ANN)),
        "other list": tokens.make_token(ANN, purpose="unsubscribe", list_id="another-list",
                                        secret=site.settings.secret),
        "empty": "",
        "garbage": "not a token at all",
        "bad base64": "!!!.???",
        "two dots": f"{head}.{sig}.x",
        "huge": "A" * 5000 + "." + sig,
    }


def test_forged_or_truncated_tokens_get_a_friendly_400_and_change_nothing(site: Site) -> None:
    site.add(ANN)
    for name, token in _forgeries(site).items():
        path = "/unsubscribe?" + urllib.parse.urlencode({"t": token})
        for method, body in (("GET", None), ("POST", ONE_CLICK)):
            reply = call(site.base, method, path, body)
            assert reply.status == 400, (name, method, reply.status)
            assert "<html" in reply.body and "link does not work" in reply.body, name
            assert "Traceback" not in reply.body
    reply = call(site.base, "POST", "/unsubscribe", ONE_CLICK)  # no token at all
    assert reply.status == 400
    assert site.status(ANN) == "active"
    conn = site.db()
    assert sum(conn.subscribers.counts().values()) == 1
    conn.close()


def test_a_token_for_one_address_does_not_work_for_another(site: Site) -> None:
    site.add(ANN, BOB)
    ann_head, ann_sig = token_of(tokens.unsubscribe_url(site.settings, ANN)).split(".")
    bob_head, bob_sig = token_of(tokens.unsubscribe_url(site.settings, BOB)).split(".")
    for token in (f"{bob_head}.{ann_sig}", f"{ann_head}.{bob_sig}"):
        reply = call(site.base, "POST", f"/unsubscribe?t={token}", ONE_CLICK)
        assert reply.status == 400
    assert site.status(ANN) == site.status(BOB) == "active"


def test_previous_secret_still_accepted_during_rotation(project: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items()}
    old = load_settings(project / "newsletter.toml", environ={**env, "NEWSLETTER_SECRET": "old"})
    new = load_settings(project / "newsletter.toml", environ={
        **env, "NEWSLETTER_SECRET": "new", "NEWSLETTER_SECRET_PREVIOUS": "old"})
    after = load_settings(project / "newsletter.toml", environ={**env, "NEWSLETTER_SECRET": "new"})
    conn = open_store(new.db_path)
    for email in (ANN, BOB):
        conn.subscribers.add(email, consent_source="test")
    old_ann = token_of(tokens.unsubscribe_url(old, ANN))
    old_bob = token_of(tokens.unsubscribe_url(old, BOB))
    with running(create_app(after)) as base:  # rotation finished: the old key is gone
        assert call(base, "POST", f"/unsubscribe?t={old_bob}", ONE_CLICK).status == 400
    with running(create_app(new)) as base:
        assert call(base, "POST", f"/unsubscribe?t={old_ann}", ONE_CLICK).status == 200
        new_bob = token_of(tokens.unsubscribe_url(new, BOB))
        assert call(base, "POST", f"/unsubscribe?t={new_bob}", ONE_CLICK).status == 200
    assert conn.subscribers.get(ANN).status == "unsubscribed"
    assert conn.subscribers.get(BOB).status == "unsubscribed"
    conn.close()


def test_concurrent_unsubscribes_from_many_threads_are_all_recorded(site: Site) -> None:
    emails = [f"reader{i:04d}@example.org" for i in range(300)]
    site.add(*emails)
    paths = [site.unsubscribe_path(e) for e in emails]
    failures: list[object] = []

    def worker(chunk: list[str]) -> None:
        for path in chunk:
            try:
                reply = call(site.base, "POST", path, ONE_CLICK)
                if reply.status != 200:
                    failures.append(reply.status)
            except OSError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=worker, args=(paths[i::16],)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures
    conn = site.db()
    assert conn.subscribers.counts()["unsubscribed"] == len(emails)
    conn.close()


# -- hostile input and limits ------------------------------------------------------------------

SQL = "x'); DROP TABLE subscribers; --\" OR 1=1; /*"


def test_sql_metacharacters_and_10kb_strings_in_every_field(site: Site) -> None:
    site.add(ANN)
    big = "Z" * 10_240
    values = [SQL, big, SQL + big, "<script>alert(1)</script>", "\x00\r\nX-Evil: 1", "北京 Ελλάδα"]
    for i, value in enumerate(values):
        for fields in (
            {"email": value, "name": "n", "form": "f"},
            {"email": f"reader{i}@example.org", "name": value, "form": value},
            {"email": value, "name": value, "form": value},
        ):
            reply = call(site.base, "POST", "/subscribe", form(**fields))
            assert reply.status in (200, 400), reply.status
            assert "<script>alert" not in reply.body
        for method in ("GET", "POST"):
            reply = call(site.base, method, "/unsubscribe?" + urllib.parse.urlencode({"t": value}),
                         form(**{"List-Unsubscribe": value}) if method == "POST" else None)
            assert reply.status == 400
        reply = call(site.base, "GET", "/confirm?" + urllib.parse.urlencode({"t": value}))
        assert reply.status == 400
    conn = site.db()
    tables = {r[0] for r in conn.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"subscribers", "sends", "events"} <= tables
    assert conn.subscribers.get(ANN).status == "active"
    rows = list(conn.subscribers.list())
    assert any(row.name == SQL for row in rows)  # stored as given, never executed
    # An address may itself hold SQL metacharacters (an apostrophe is valid in one).
    reply = call(site.base, "POST", "/subscribe", form(email="O'Brien--@example.org"))
    assert reply.status == 200
    assert conn.subscribers.get("o'brien--@example.org").status == "pending"
    for row in rows:  # bounded, one line, no control characters
        for value in (row.name or "", row.consent_form or ""):
            assert len(value) <= 200 and value.isprintable()
    conn.close()


def test_a_subscriber_name_over_the_limit_is_refused_not_truncated(site: Site) -> None:
    reply = call(site.base, "POST", "/subscribe",
                 form(email="carol@example.org", name="C" * 10_240))
    assert reply.status == 400 and "at most 200" in reply.body
    assert site.status("carol@example.org") is None


def test_a_body_over_the_limit_is_refused_with_413(site: Site) -> None:
    site.add(ANN)
    too_big = "x=" + "y" * FORM_LIMIT
    reply = call(site.base, "POST", "/subscribe", too_big)
    assert reply.status == 413
    reply = call(site.base, "POST", site.unsubscribe_path(ANN), too_big)
    assert reply.status == 413
    assert site.status(ANN) == "active"
    reply = call(site.base, "POST", "/webhooks/sendgrid", b"[" + b" " * WEBHOOK_LIMIT + b"]",
                 {"Content-Type": "application/json"})
    assert reply.status == 413


def test_wrong_methods_and_paths(site: Site) -> None:
    assert call(site.base, "GET", "/webhooks/sendgrid").status == 405
    # /webhooks/<provider>: only registered providers that have a webhook
    assert call(site.base, "POST", "/webhooks/pigeon", b"[]").status == 404
    assert call(site.base, "POST", "/webhooks/smtp", b"[]").status == 404
    assert call(site.base, "POST", "/confirm?t=x", "a=b").status == 405
    assert call(site.base, "GET", "/nope").status == 404
    assert call(site.base, "GET", "/healthz").body == "ok\n"


# -- SendGrid Event Webhook ----------------------------------------------------------------------

def _events(n_open: int = 3) -> list[dict]:
    events = [
        {"sg_event_id": "ev-bounce", "event": "bounce", "email": ANN, "timestamp": 1,
         "issue": "2011-05", "reason": "550 5.1.1 mailbox does not exist", "type": "bounce"},
        {"sg_event_id": "ev-spam", "event": "spamreport", "email": BOB, "timestamp": 2,
         "issue": "2011-05"},
        {"sg_event_id": "ev-unsub", "event": "unsubscribe", "email": "carol@example.org",
         "timestamp": 3, "category": ["newsletter", "2011-05"]},
        {"sg_event_id": "ev-deliv", "event": "delivered", "email": "dan@example.org",
         "timestamp": 4, "issue": "2011-05"},
    ]
    events += [{"sg_event_id": f"ev-open-{i}", "event": "open", "email": "dan@example.org",
                "timestamp": 5 + i, "issue": "2011-05"} for i in range(n_open)]
    return events


def test_signed_events_are_applied_once_and_a_replay_changes_nothing(site: Site) -> None:
    site.add(ANN, BOB, "carol@example.org", "dan@example.org")
    reply = site.webhook(_events())
    assert reply.status == 200
    assert json.loads(reply.body)["new"] == 7
    assert site.get(ANN).status == "suppressed" and "550 5.1.1" in site.get(ANN).status_reason
    assert site.status(BOB) == "suppressed"
    assert site.status("carol@example.org") == "unsubscribed"
    assert site.status("dan@example.org") == "active"
    from newsletter.subscribers.lifecycle import issue_stats

    conn = site.db()
    stats = issue_stats(conn, "2011-05")
    counted = (stats.count(EventKind.DELIVERED), stats.count(EventKind.OPENED),
               stats.events[EventKind.OPENED].addresses, stats.count(EventKind.BOUNCED))
    assert counted == (1, 3, 1, 1)
    before = conn.conn.execute("SELECT * FROM events ORDER BY event_id").fetchall()
    subs = list(conn.subscribers.list())
    replay = site.webhook(_events())
    assert replay.status == 200
    assert json.loads(replay.body) == {"received": 7, "new": 0, "duplicates": 7, "invalid": 0,
                                       "suppressed": 0, "settled": 0}
    assert conn.conn.execute("SELECT * FROM events ORDER BY event_id").fetchall() == before
    assert list(conn.subscribers.list()) == subs
    conn.close()


def test_unsigned_mis_signed_and_stale_webhooks_are_rejected(site: Site) -> None:
    site.add(ANN)
    body = json.dumps(_events()).encode()
    now = str(int(time.time()))
    other_key, _ = keypair()
    cases = {
        "unsigned": {"Content-Type": "application/json"},
        "no timestamp": {"X-Twilio-Email-Event-Webhook-Signature": sign(site.private_key, now,
                                                                        body)},
        "other key": signed_headers(other_key, body, now),
        "body changed after signing": signed_headers(site.private_key, body[:-1] + b" ]", now),
        "timestamp changed": {**signed_headers(site.private_key, body, now),
                              "X-Twilio-Email-Event-Webhook-Timestamp": str(int(now) + 1)},
        "stale": signed_headers(site.private_key, body, str(int(time.time()) - 3600)),
        "future": signed_headers(site.private_key, body, str(int(time.time()) + 3600)),
        "garbage signature": {**signed_headers(site.private_key, body, now),
                              "X-Twilio-Email-Event-Webhook-Signature": "%%%not base64"},
    }
    for name, headers in cases.items():
        reply = call(site.base, "POST", "/webhooks/sendgrid", body, headers)
        assert reply.status in (400, 403), (name, reply.status)
    assert site.status(ANN) == "active"
    conn = site.db()
    assert conn.events.total() == 0
    conn.close()


def test_webhook_oversized_or_not_json_is_rejected(site: Site) -> None:
    now = str(int(time.time()))
    big = json.dumps([{"sg_event_id": "x", "event": "open", "email": ANN,
                       "pad": "p" * WEBHOOK_LIMIT}]).encode()
    reply = call(site.base, "POST", "/webhooks/sendgrid", big,
                 signed_headers(site.private_key, big, now))
    assert reply.status == 413
    for body in (b"{not json", b'{"event": "open"}', "[\"\u00e9\"]".encode("latin-1")):
        reply = call(site.base, "POST", "/webhooks/sendgrid", body,
                     signed_headers(site.private_key, body, now))
        assert reply.status == 400
    conn = site.db()
    assert conn.events.total() == 0
    conn.close()


def test_webhook_refuses_everything_without_a_configured_key(project: Path) -> None:
    settings = load_settings(project / "newsletter.toml")
    assert not settings.getenv("SENDGRID_WEBHOOK_PUBLIC_KEY")
    private, _ = keypair()
    body = b"[]"
    with running(create_app(settings)) as base:
        reply = call(base, "POST", "/webhooks/sendgrid", body,
                     signed_headers(private, body, str(int(time.time()))))
    assert reply.status == 403


# -- an unsubscribe while a send is queued or running --------------------------------------------

def test_an_unsubscribe_while_a_send_is_queued_or_running_is_honoured(site: Site) -> None:
    from newsletter.deliver.sender import send_all
    from tests.support.sending import RecordingProvider, add_subscribers, rendered

    emails = add_subscribers(site.settings.db_path, 8)
    conn = site.db()
    assert conn.ledger("2011-05").seed() == 8  # every address queued in the ledger
    conn.close()
    # Queued, then unsubscribed through the one-click endpoint before the send starts.
    assert call(site.base, "POST", site.unsubscribe_path(emails[1]), ONE_CLICK).status == 200

    def unsubscribe_mid_send(recipients) -> None:
        # While the first batch is with the provider, a reader of a later batch clicks.
        assert emails[6] not in [r.email for r in recipients]
        reply = call(site.base, "POST", site.unsubscribe_path(emails[6]), ONE_CLICK)
        assert reply.status == 200

    provider = RecordingProvider(max_batch=2, script={0: unsubscribe_mid_send})
    send_all(rendered(), site.settings, provider)
    delivered = provider.delivered
    assert emails[1] not in delivered and emails[6] not in delivered
    assert sorted(delivered) == sorted(set(emails) - {emails[1], emails[6]})
    assert site.status(emails[1]) == site.status(emails[6]) == "unsubscribed"


# -- double opt-in through a real SMTP server ---------------------------------------------------

@pytest.fixture
def smtp_site(project: Path, monkeypatch: pytest.MonkeyPatch):
    from tests.support.smtp_server import SmtpPeer

    with SmtpPeer() as peer:
        monkeypatch.setenv("NEWSLETTER_PROVIDER", "smtp")
        monkeypatch.setenv("SMTP_URL", peer.url())
        settings = load_settings(project / "newsletter.toml")
        with running(create_app(settings)) as base:
            yield Site(base, settings, None), peer


def _confirm_path(peer, index: int = -1) -> tuple[str, object]:
    import email
    from email import policy

    message = email.message_from_bytes(peer.messages[index].data, policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    url = re.search(r"https?://\S+/confirm\?t=\S+", text).group(0)
    return url[url.index("/confirm"):], message


def test_subscribe_sends_a_confirmation_and_confirm_activates_with_consent(smtp_site) -> None:
    site, peer = smtp_site
    reply = call(site.base, "POST", "/subscribe",
                 form(email="New.Reader@Example.org", name="New Reader", form="footer"),
                 {"X-Forwarded-For": "203.0.113.9"})
    assert reply.status == 200 and "check your inbox" in reply.body.lower()
    reader = site.get("new.reader@example.org")
    assert reader.status == "pending" and reader.confirmed_at is None
    assert reader.consent_at and reader.consent_source == "form"
    assert reader.consent_ip == "127.0.0.1"  # X-Forwarded-For from an untrusted peer is ignored
    assert "footer" in reader.consent_form

    assert len(peer.messages) == 1
    assert peer.messages[0].rcpt_tos == ["new.reader@example.org"]
    path, message = _confirm_path(peer)
    assert site.settings.name in message["Subject"]
    assert message["List-Unsubscribe"] is None  # a one-off confirmation, not a newsletter
    assert tokens.confirm_url(site.settings, "new.reader@example.org").endswith(path)

    reply = call(site.base, "GET", path)
    assert reply.status == 200 and "subscribed" in reply.body.lower()
    reader = site.get("new.reader@example.org")
    assert reader.status == "active" and reader.confirmed_at

    shown = CliRunner().invoke(main, ["subscribers", "show", "new.reader@example.org"])
    assert shown.exit_code == 0, shown.output
    for field, value in (("status", "active"), ("consent_source", "form"),
                         ("consent_ip", "127.0.0.1"), ("confirmed_at", reader.confirmed_at),
                         ("consent_at", reader.consent_at)):
        assert re.search(rf"^{field}:\s+{re.escape(value)}", shown.output, re.M), field
    assert "footer" in shown.output

    # Asking again while active sends nothing and changes no consent record.
    again = call(site.base, "POST", "/subscribe", form(email="new.reader@example.org"))
    assert again.status == 200 and len(peer.messages) == 1
    assert site.get("new.reader@example.org") == reader


def test_a_pending_request_is_not_mailed_twice_in_a_minute(smtp_site) -> None:
    site, peer = smtp_site
    for _ in range(3):
        assert call(site.base, "POST", "/subscribe", form(email="eve@example.org")).status == 200
    assert len(peer.messages) == 1


def test_resubscribing_an_unsubscribed_address_needs_the_confirmation(smtp_site) -> None:
    site, peer = smtp_site
    call(site.base, "POST", "/subscribe", form(email=ANN))
    first_link, _ = _confirm_path(peer)
    assert call(site.base, "GET", first_link).status == 200
    assert call(site.base, "POST", site.unsubscribe_path(ANN), ONE_CLICK).status == 200
    # The old confirmation email clicked again (or prefetched) does not re-subscribe.
    reply = call(site.base, "GET", first_link)
    assert reply.status == 200 and "nothing was changed" in reply.body
    assert site.status(ANN) == "unsubscribed"
    # A new request keeps the address unsubscribed until its own confirmation.
    assert call(site.base, "POST", "/subscribe", form(email=ANN, form="archive")).status == 200
    assert site.status(ANN) == "unsubscribed" and len(peer.messages) == 2
    link, _ = _confirm_path(peer)
    assert call(site.base, "GET", link).status == 200
    ann = site.get(ANN)
    assert ann.status == "active" and ann.unsubscribed_at is None and "archive" in ann.consent_form


def test_consent_ip_comes_from_x_forwarded_for_only_behind_a_trusted_proxy(project: Path,
                                                                           monkeypatch) -> None:
    monkeypatch.setenv("NEWSLETTER_PROVIDER", "file")
    settings = load_settings(project / "newsletter.toml")
    with running(create_app(settings), trusted_proxy="127.0.0.1") as base:
        reply = call(base, "POST", "/subscribe", form(email=BOB),
                     {"X-Forwarded-For": "203.0.113.9"})
    assert reply.status == 200
    conn = open_store(settings.db_path)
    assert conn.subscribers.get(BOB).consent_ip == "203.0.113.9"
    conn.close()
    assert len(list((project / "outbox").rglob("*.eml"))) == 1  # the file provider got it


def test_subscribe_page_and_invalid_address(site: Site) -> None:
    page = call(site.base, "GET", "/subscribe")
    assert page.status == 200 and 'name="email"' in page.body and 'action="subscribe"' in page.body
    reply = call(site.base, "POST", "/subscribe", form(email="not-an-address"))
    assert reply.status == 400 and "valid email address" in reply.body
    assert 'value="not-an-address"' in reply.body
    conn = site.db()
    assert sum(conn.subscribers.counts().values()) == 0
    conn.close()


@pytest.mark.slow
def test_status_shows_what_the_webhook_and_one_click_recorded(site: Site) -> None:
    from newsletter.deliver.sender import send_all
    from tests.support.sending import RecordingProvider, add_subscribers, rendered

    emails = add_subscribers(site.settings.db_path, 4)
    send_all(rendered(), site.settings, RecordingProvider())
    time.sleep(1.1)  # the unsubscribe comes after the send (times have second precision)
    assert call(site.base, "POST", site.unsubscribe_path(emails[3]), ONE_CLICK).status == 200
    events = [
        {"sg_event_id": f"d{i}", "event": "delivered", "email": e, "issue": "2011-05"}
        for i, e in enumerate(emails)
    ] + [
        {"sg_event_id": "o1", "event": "open", "email": emails[0], "issue": "2011-05"},
        {"sg_event_id": "o2", "event": "open", "email": emails[0], "issue": "2011-05"},
        {"sg_event_id": "c1", "event": "click", "email": emails[1], "issue": "2011-05"},
        {"sg_event_id": "b1", "event": "bounce", "email": emails[2], "issue": "2011-05",
         "reason": "550 no such user"},
    ]
    assert site.webhook(events).status == 200
    result = CliRunner().invoke(main, ["status", "issues/2011-05.yaml"])
    assert result.exit_code == 0, result.output
    rows = dict(re.findall(r"^\s+([a-z ]+?)\s+(\d+)$", result.output, re.M))
    assert rows["sent"] == "4" and rows["delivered"] == "4" and rows["bounced"] == "1"
    assert rows["opened"] == "2" and rows["clicked"] == "1" and rows["unsubscribed"] == "1"


def test_a_failed_confirmation_email_is_a_503_and_can_be_retried_at_once(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.smtp_server import SmtpPeer

    peer = SmtpPeer()  # its port is chosen but nothing listens there yet
    monkeypatch.setenv("NEWSLETTER_PROVIDER", "smtp")
    monkeypatch.setenv("SMTP_URL", peer.url())
    settings = load_settings(project / "newsletter.toml")
    with running(create_app(settings)) as base:
        down = call(base, "POST", "/subscribe", form(email=ANN))
        assert down.status == 503 and "try again" in down.body.lower()
        with peer:
            up = call(base, "POST", "/subscribe", form(email=ANN))
            assert up.status == 200
    assert [m.rcpt_tos for m in peer.messages] == [[ANN]]
    conn = open_store(settings.db_path)
    assert conn.subscribers.get(ANN).status == "pending"
    conn.close()


@pytest.mark.slow
def test_a_one_click_waits_for_a_cli_write_lock_and_succeeds(site: Site) -> None:
    site.add(ANN)
    other = site.db()  # e.g. `send --all` claiming a batch
    other.conn.begin()
    release = threading.Timer(1.0, other.conn.commit)
    release.start()
    started = time.monotonic()
    reply = call(site.base, "POST", site.unsubscribe_path(ANN), ONE_CLICK)
    waited = time.monotonic() - started
    release.join()
    other.close()
    assert reply.status == 200 and waited >= 0.9
    assert site.status(ANN) == "unsubscribed"


@pytest.mark.slow
@pytest.mark.browser
def test_unsubscribe_button_in_chromium_at_phone_width(site: Site) -> None:
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip(f"{chromium} is absent (install Debian's chromium; CI has it)")
    from playwright.sync_api import sync_playwright

    site.add(ANN)
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=args)
        try:
            page = browser.new_page(viewport={"width": 360, "height": 740})
            page.route("**/*", lambda route: route.continue_()
                       if route.request.url.startswith(("http://127.0.0.1", "data:"))
                       else route.abort())
            page.goto(site.base + site.unsubscribe_path(ANN))
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            assert site.status(ANN) == "active"
            page.get_by_role("button", name="Unsubscribe").click()
            page.wait_for_load_state()
            assert page.get_by_role("heading").inner_text() == "You are unsubscribed"
            assert site.status(ANN) == "unsubscribed"
            page.get_by_role("link", name="subscribe again").click()
            page.wait_for_load_state()
            assert page.url == site.base + "/subscribe"
            assert page.get_by_label("Email address").is_visible()
        finally:
            browser.close()

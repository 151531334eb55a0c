"""The `smtp` provider against a real aiosmtpd server on 127.0.0.1 (tests/support/smtp_server)."""

from __future__ import annotations

import email
import email.policy
from types import SimpleNamespace

import pytest

from newsletter.compose.render import UNSUBSCRIBE_PLACEHOLDER
from newsletter.deliver.campaign import Campaign, Kind, Recipient, Status
from newsletter.deliver.providers.base import RetryableError
from newsletter.deliver.providers.smtp import SmtpProvider, parse_smtp_url
from newsletter.errors import ConfigError, ProviderAuthError, ProviderError
from tests.support.smtp_server import SmtpPeer, free_port, make_cert

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SUBJECT = "Πόλεις της Μετανάστευσης – مدن الهجرة – Zürich"
# MJML output: one very long line. Sent 7bit it would break RFC 5321; aiosmtpd refuses it.
HTML = ('<table><tr><td style="font-size:16px;line-height:1.5">' + "Montréal 北京 " * 400
        + f'</td></tr></table><a href="{UNSUBSCRIBE_PLACEHOLDER}">Unsubscribe</a>')
TEXT = f"Ελλάδα\n\nUnsubscribe: {UNSUBSCRIBE_PLACEHOLDER}\n"
CAMPAIGN = Campaign(
    slug="2011-05", subject=SUBJECT, html=HTML, text=TEXT,
    from_email="newsletter@citiesofmigration.ca", from_name="Cities of Migration",
    reply_to="info@citiesofmigration.ca", list_id="cities-of-migration",
)
PASSWORD = "p@ss:w/rd é"  # needs URL-encoding in SMTP_URL


def url(i: int) -> str:
    return f"https://newsletter.example.org/unsubscribe?t=tok{i}.sig"


def recipients(n: int, start: int = 0) -> list[Recipient]:
    return [Recipient(f"r{i}@example.org", f"Ζωή {i}", url(i)) for i in range(start, start + n)]


def provider(smtp_url: str, **env: str) -> SmtpProvider:
    values = {"SMTP_URL": smtp_url, "SMTP_TIMEOUT": "5", **env}
    return SmtpProvider.from_settings(SimpleNamespace(getenv=lambda k, d=None: values.get(k, d)))


def parse(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("tls"))


def test_delivers_exact_messages_over_one_connection() -> None:
    with SmtpPeer() as peer:
        p = provider(peer.url())
        first = p.send_batch(CAMPAIGN, recipients(3))
        second = p.send_batch(CAMPAIGN, recipients(2, start=3))
        p.close()
    assert [r.status for r in first + second] == [Status.SENT] * 5
    assert p.connections_opened == 1  # reused across batches
    assert len(peer.messages) == 5
    for i, got in enumerate(peer.messages):
        assert got.mail_from == "newsletter@citiesofmigration.ca"
        assert got.rcpt_tos == [f"r{i}@example.org"]  # one recipient per message
        assert max(len(line) for line in got.data.split(b"\r\n")) <= 998
        msg = parse(got.data)
        assert msg["Subject"] == SUBJECT
        assert msg["From"] == "Cities of Migration <newsletter@citiesofmigration.ca>"
        assert msg["Reply-To"] == "info@citiesofmigration.ca"
        assert msg["To"].addresses[0].display_name == f"Ζωή {i}"
        assert msg["List-Id"] == "<cities-of-migration.citiesofmigration.ca>"
        assert msg["List-Unsubscribe"] == f"<{url(i)}>"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["Message-ID"] == (first + second)[i].message_id
        text, html = (part.get_content() for part in msg.iter_parts())
        assert f"Unsubscribe: {url(i)}" in text and f'href="{url(i)}"' in html
        assert "Montréal 北京 " * 400 in html and "Ελλάδα" in text
        others = [url(j) for j in range(5) if j != i]
        assert not any(o in got.data.decode() for o in others)


def test_test_send_has_no_list_unsubscribe() -> None:
    test = Campaign(**{**CAMPAIGN.__dict__, "subject": "[TEST] " + SUBJECT, "kind": Kind.TEST})
    with SmtpPeer() as peer:
        p = provider(peer.url())
        [result] = p.send_batch(test, [Recipient("editor@example.org")])
        p.close()
    assert result.status is Status.SENT
    msg = parse(peer.messages[0].data)
    assert msg["Subject"] == "[TEST] " + SUBJECT
    assert msg["List-Unsubscribe"] is None and msg["List-Unsubscribe-Post"] is None


def test_auth_with_url_encoded_password() -> None:
    with SmtpPeer(auth=("ana@example.org", PASSWORD)) as peer:
        assert "%40" in peer.url() and "%3A" in peer.url()
        p = provider(peer.url())
        assert p.send_batch(CAMPAIGN, recipients(1))[0].status is Status.SENT
        p.close()
    assert peer.messages[0].login == "ana@example.org"


def test_wrong_password_is_provider_auth_error_without_the_password() -> None:
    with SmtpPeer(auth=("ana", PASSWORD)) as peer:
        p = provider(peer.url("ana", "wrong-secret-123"))
        with pytest.raises(ProviderAuthError) as caught:
            p.send_batch(CAMPAIGN, recipients(2))
    assert caught.value.status == 535
    assert "wrong-secret-123" not in str(caught.value)
    assert "SMTP_URL" in str(caught.value)
    assert peer.messages == []


def test_starttls_with_ca_file(cert) -> None:
    with SmtpPeer(tls="starttls", cert=cert, auth=("ana", PASSWORD)) as peer:
        p = provider(peer.url(), SMTP_CA_FILE=str(cert[0]))
        assert [r.status for r in p.send_batch(CAMPAIGN, recipients(2))] == [Status.SENT] * 2
        p.close()
    assert len(peer.messages) == 2 and peer.messages[0].login == "ana"


def test_starttls_untrusted_certificate_is_a_clear_error(cert) -> None:
    with SmtpPeer(tls="starttls", cert=cert) as peer:
        with pytest.raises(ProviderError, match="SMTP_CA_FILE") as caught:
            provider(peer.url()).send_batch(CAMPAIGN, recipients(1))
        assert not isinstance(caught.value, RetryableError)  # retrying will not help
        # SMTP_TLS_VERIFY=0 accepts it (test servers only).
        p = provider(peer.url(), SMTP_TLS_VERIFY="0")
        assert p.send_batch(CAMPAIGN, recipients(1))[0].status is Status.SENT
        p.close()


def test_smtps_implicit_tls(cert) -> None:
    with SmtpPeer(tls="smtps", cert=cert, auth=("ana", PASSWORD)) as peer:
        assert peer.url().startswith("smtps://")
        p = provider(peer.url(), SMTP_CA_FILE=str(cert[0]))
        assert [r.status for r in p.send_batch(CAMPAIGN, recipients(2))] == [Status.SENT] * 2
        p.close()
    assert parse(peer.messages[1].data)["Subject"] == SUBJECT


def test_reconnects_after_the_server_drops_the_connection() -> None:
    with SmtpPeer(drop_after=2) as peer:
        p = provider(peer.url())
        results = p.send_batch(CAMPAIGN, recipients(4))
        p.close()
    assert [r.status for r in results] == [Status.SENT] * 4
    assert p.connections_opened == 2
    assert [m.rcpt_tos[0] for m in peer.messages] == [f"r{i}@example.org" for i in range(4)]


def test_connection_lost_during_data_is_unknown_never_resent() -> None:
    with SmtpPeer(drop_in_data=2) as peer:
        p = provider(peer.url())
        results = p.send_batch(CAMPAIGN, recipients(3))
        p.close()
    assert [r.status for r in results] == [Status.SENT, Status.UNKNOWN, Status.SENT]
    assert results[1].message_id and "after the message was sent" in results[1].error
    # The server did get it: reporting it sent-or-unknown (not failed) avoids a duplicate.
    assert [m.rcpt_tos[0] for m in peer.dropped] == ["r1@example.org"]
    assert [m.rcpt_tos[0] for m in peer.messages] == ["r0@example.org", "r2@example.org"]


def test_server_gone_mid_batch_keeps_what_was_sent() -> None:
    """Once part of a batch is delivered, send_batch must not raise (the caller would forget
    the delivered ones and send them again): the rest is FAILED, certainly not sent."""
    with SmtpPeer(gone_after=2) as peer:
        p = provider(peer.url())
        results = p.send_batch(CAMPAIGN, recipients(4))
        p.close()
    assert [r.status for r in results] == [Status.SENT, Status.SENT, Status.FAILED, Status.FAILED]
    assert all(r.error.startswith("not attempted") for r in results[2:])
    assert len(peer.messages) == 2


def test_refused_recipients_are_rejected_or_failed() -> None:
    reject = {"r1@example.org": "550 5.1.1 no such user", "r2@example.org": "450 4.2.1 busy"}
    with SmtpPeer(reject=reject) as peer:
        p = provider(peer.url())
        results = p.send_batch(CAMPAIGN, recipients(4))
        p.close()
    assert [r.status for r in results] == [
        Status.SENT, Status.REJECTED, Status.FAILED, Status.SENT]
    assert results[1].error.startswith("550") and results[2].error.startswith("450")
    assert len(peer.messages) == 2


def test_unreachable_server_is_retryable() -> None:
    p = provider(f"smtp://127.0.0.1:{free_port()}")
    with pytest.raises(RetryableError, match="cannot connect"):
        p.send_batch(CAMPAIGN, recipients(2))


def test_server_gone_between_batches_is_retryable() -> None:
    with SmtpPeer() as peer:
        p = provider(peer.url())
        assert p.send_batch(CAMPAIGN, recipients(1))[0].status is Status.SENT
    with pytest.raises(RetryableError):  # reconnect refused: nothing of this batch was sent
        p.send_batch(CAMPAIGN, recipients(1, start=1))
    p.close()


def test_non_ascii_local_part_is_rejected_not_sent() -> None:
    with SmtpPeer() as peer:
        p = provider(peer.url())
        results = p.send_batch(CAMPAIGN, [Recipient("ζωή@example.org", None, url(1)),
                                          *recipients(1)])
        p.close()
    assert [r.status for r in results] == [Status.REJECTED, Status.SENT]
    assert len(peer.messages) == 1


@pytest.mark.parametrize("bad", [
    "http://u:topsecret@host:25", "smtp://u:topsecret@:25", "smtp://u:topsecret@host:port",
    "smtp://u:topsecret@host:99999", "smtp://u:topsecret@host:25/path", "host:25",
])
def test_malformed_smtp_url_names_the_variable_not_the_password(bad) -> None:
    with pytest.raises(ConfigError) as caught:
        provider(bad)
    assert caught.value.field == "SMTP_URL"
    assert "topsecret" not in str(caught.value)


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "nan", "inf"])
def test_bad_smtp_timeout_is_a_config_error(bad) -> None:
    # 0, -1 and nan used to pass here and crash in the socket with a traceback
    with pytest.raises(ConfigError) as caught:
        provider("smtp://127.0.0.1:25", SMTP_TIMEOUT=bad)
    assert caught.value.field == "SMTP_TIMEOUT"


def test_smtp_url_parsing() -> None:
    cfg = parse_smtp_url("smtp://ana%40example.org:p%40ss%3Aw@mail.example.org")
    assert (cfg.scheme, cfg.host, cfg.port) == ("smtp", "mail.example.org", 587)
    assert (cfg.user, cfg.password) == ("ana@example.org", "p@ss:w")
    assert "p@ss" not in repr(cfg)
    assert parse_smtp_url("smtps://mail.example.org").port == 465
    assert parse_smtp_url("smtp://mail.example.org").port == 25


def test_refuses_plain_auth_to_a_remote_server_without_starttls(monkeypatch) -> None:
    # Loopback is exempt (test servers); pretend 127.0.0.1 is remote.
    monkeypatch.setattr("newsletter.deliver.providers.smtp._LOOPBACK", set())
    with SmtpPeer(auth=("ana", PASSWORD)) as peer:
        with pytest.raises(ProviderError, match="SMTP_ALLOW_PLAIN_AUTH") as caught:
            provider(peer.url()).send_batch(CAMPAIGN, recipients(1))
        assert PASSWORD not in str(caught.value)
        p = provider(peer.url(), SMTP_ALLOW_PLAIN_AUTH="1")
        assert p.send_batch(CAMPAIGN, recipients(1))[0].status is Status.SENT
        p.close()
    assert len(peer.messages) == 1


def test_seed_issue_through_get_provider(settings, seed_issue, monkeypatch) -> None:
    """The real rendered issue (MJML's long lines) through the configured provider."""
    from newsletter.compose.issue import load_issue
    from newsletter.compose.render import render_issue
    from newsletter.config import load_settings
    from newsletter.deliver.campaign import issue_campaign
    from newsletter.deliver.providers import get_provider
    from newsletter.tokens import unsubscribe_url

    rendered = render_issue(load_issue(seed_issue), settings)
    # The inliner writes most of the document on one line: sent 7bit, aiosmtpd would refuse it.
    assert max(len(line) for line in rendered.html.splitlines()) > 998
    with SmtpPeer(auth=("ana", PASSWORD)) as peer:
        monkeypatch.setenv("NEWSLETTER_PROVIDER", "smtp")
        monkeypatch.setenv("SMTP_URL", peer.url())
        live = load_settings()
        p = get_provider(live)
        assert p.name == "smtp"
        to = ["reader@example.org", "lecteur@example.org"]
        batch = [Recipient(a, None, unsubscribe_url(live, a)) for a in to]
        results = p.send_batch(issue_campaign(rendered, live), batch)
        p.close()
    assert [r.status for r in results] == [Status.SENT] * 2
    for address, got in zip(to, peer.messages, strict=True):
        msg = parse(got.data)
        assert msg["Subject"] == rendered.subject
        assert msg["List-Unsubscribe"] == f"<{unsubscribe_url(live, address)}>"
        html = msg.get_body(("html",)).get_content()
        text = msg.get_body(("plain",)).get_content()
        assert unsubscribe_url(live, address) in text
        assert unsubscribe_url(live, address).replace("&", "&amp;") in html
        assert UNSUBSCRIBE_PLACEHOLDER not in html + text

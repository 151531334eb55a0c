"""Full sends through the real providers to their loopback peers: the fake SendGrid endpoint
(schema-validating) and an aiosmtpd server. Includes the SIGKILL-and-rerun test."""

from __future__ import annotations

import asyncio
import email
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.deliver import sender
from newsletter.errors import ProviderAuthError
from newsletter.store import open_store
from newsletter.tokens import read_token
from tests.conftest import ROOT
from tests.support.fake_sendgrid import FakeSendGrid
from tests.support.sending import add_subscribers, counts, rendered
from tests.support.smtp_server import SmtpPeer

KEY = "SG.test-key-never-printed"
ISSUE = "issues/2011-05.yaml"


@pytest.fixture
def sendgrid(project, monkeypatch):
    with FakeSendGrid(api_key=KEY) as sg:
        monkeypatch.setenv("NEWSLETTER_PROVIDER", "sendgrid")
        monkeypatch.setenv("SENDGRID_API_KEY", KEY)
        monkeypatch.setenv("SENDGRID_API_HOST", sg.url)
        yield sg


def recipients_of(sg: FakeSendGrid) -> list[str]:
    return [p["to"][0]["email"] for r in sg.requests if r.body and not r.problems
            for p in r.body["personalizations"]]


def fresh_settings(project: Path):
    return load_settings(project / "newsletter.toml")


# -- SendGrid ------------------------------------------------------------------------------


@pytest.mark.slow
def test_2500_subscribers_three_requests_each_once(project, sendgrid):
    settings = fresh_settings(project)
    emails = add_subscribers(settings.db_path, 2500)
    report = sender.send_all(rendered(), settings)
    assert len(sendgrid.requests) == 3 and sendgrid.invalid == []
    assert [len(r.body["personalizations"]) for r in sendgrid.requests] == [1000, 1000, 500]
    got = recipients_of(sendgrid)
    assert Counter(got) == Counter(emails)
    assert report.sent == 2500 and counts(settings.db_path)["sent"] == 2500
    # One personalization per recipient with their own unsubscribe URL and one-click header.
    p = sendgrid.requests[1].body["personalizations"][17]
    url = p["headers"]["List-Unsubscribe"].strip("<>")
    assert read_token(url.split("t=")[1], purpose="unsubscribe", list_id=settings.list_id,
                      secrets=settings.secrets) == p["to"][0]["email"]
    assert p["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sendgrid.requests[0].body["custom_args"] == {"issue": "2011-05"}
    conn = open_store(settings.db_path).conn
    ids = {r[0] for r in conn.execute("SELECT message_id FROM sends")}
    assert len(ids) == 3 and None not in ids  # one X-Message-Id per request


@pytest.mark.slow
def test_retries_on_429_and_500_then_success(project, sendgrid):
    settings = fresh_settings(project)
    emails = add_subscribers(settings.db_path, 1200)
    sendgrid.fail_next("429", retry_after=1)
    sendgrid.fail_next("500")
    start = time.monotonic()
    report = sender.send_all(rendered(), settings, backoff=0.01)
    assert time.monotonic() - start >= 1.0  # Retry-After: 1 honoured
    assert len(sendgrid.requests) == 4 and report.requests == 4
    assert Counter(recipients_of(sendgrid)[-1200:]) == Counter(emails)
    assert counts(settings.db_path)["sent"] == 1200


def test_401_stops_with_a_clear_message_nothing_sent(project, sendgrid):
    settings = fresh_settings(project)
    add_subscribers(settings.db_path, 2500)
    sendgrid.fail_next("401")
    with pytest.raises(ProviderAuthError) as err:
        sender.send_all(rendered(), settings)
    message = str(err.value)
    assert "refused the API key" in message and "SENDGRID_API_KEY" in message
    assert "nothing more was sent" in message and KEY not in message
    assert len(sendgrid.requests) == 1
    c = counts(settings.db_path)
    assert c["sent"] == 0 and c["in_flight"] == 0 and c["pending"] == 2500


def test_401_through_the_cli(project, sendgrid):
    settings = fresh_settings(project)
    add_subscribers(settings.db_path, 5)
    assert CliRunner().invoke(main, ["send", ISSUE, "--test"]).exit_code == 0
    sendgrid.fail_next("401")
    result = CliRunner().invoke(main, ["send", ISSUE, "--all", "--yes", "--offline"])
    assert result.exit_code == 1
    assert "SendGrid refused the API key" in result.stderr.strip().splitlines()[-1]
    assert KEY not in result.output and "Traceback" not in result.output
    assert counts(settings.db_path)["sent"] == 0


@pytest.mark.slow
def test_hang_is_unknown_and_retry_unknown_resends(project, sendgrid, monkeypatch):
    monkeypatch.setenv("SENDGRID_TIMEOUT", "0.5")
    settings = fresh_settings(project)
    emails = add_subscribers(settings.db_path, 1500)
    sendgrid.fail_next("202")  # first request fine
    sendgrid.fail_next("hang", seconds=2)
    report = sender.send_all(rendered(), settings)
    assert report.sent == 1000 and report.unknown == 500 and report.unknown_total == 500
    assert report.unknown_sample == emails[1000:1020]
    again = sender.send_all(rendered(), settings)
    assert again.to_send == 0 and again.unknown_total == 500  # not resent silently
    third = sender.send_all(rendered(), settings, retry_unknown=True)
    assert third.sent == 500 and third.unknown_total == 0
    assert counts(settings.db_path)["sent"] == 1500


def test_unsubscribed_skipped_and_rerun_sends_nothing(project, sendgrid):
    settings = fresh_settings(project)
    emails = add_subscribers(settings.db_path, 10)
    open_store(settings.db_path).subscribers.unsubscribe(emails[4], "test")
    sender.send_all(rendered(), settings)
    assert emails[4] not in recipients_of(sendgrid) and len(recipients_of(sendgrid)) == 9
    sender.send_all(rendered(), settings)
    assert len(sendgrid.requests) == 1


# -- SMTP ----------------------------------------------------------------------------------


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)


def test_smtp_send_through_aiosmtpd(project, monkeypatch):
    with SmtpPeer(auth=("ana", "s3cret")) as peer:
        monkeypatch.setenv("NEWSLETTER_PROVIDER", "smtp")
        monkeypatch.setenv("SMTP_URL", peer.url())
        settings = fresh_settings(project)
        emails = add_subscribers(settings.db_path, 120)
        report = sender.send_all(rendered(), settings, connections=3)
        assert report.sent == 120
        got = Counter(rcpt for m in peer.messages for rcpt in m.rcpt_tos)
        assert sorted(got) == emails and set(got.values()) == {1}
        assert {m.login for m in peer.messages} == {"ana"}
        msg = parse(peer.messages[0].data)
        to = msg["To"].addresses[0].addr_spec
        url = msg["List-Unsubscribe"].strip("<>")
        assert read_token(url.split("t=")[1], purpose="unsubscribe", list_id=settings.list_id,
                          secrets=settings.secrets) == to
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert url in text and url.replace("&", "&amp;") in html
        assert "{{unsubscribe_url}}" not in text + html


def test_smtp_drop_in_data_is_unknown(project, monkeypatch):
    with SmtpPeer(drop_in_data=3) as peer:
        monkeypatch.setenv("NEWSLETTER_PROVIDER", "smtp")
        monkeypatch.setenv("SMTP_URL", peer.url())
        settings = fresh_settings(project)
        emails = add_subscribers(settings.db_path, 5)
        report = sender.send_all(rendered(), settings, connections=1)
        assert report.unknown_total >= 1 and emails[2] in report.unknown_sample
        assert emails[2] not in {r for m in peer.messages for r in m.rcpt_tos}


# -- killed with SIGKILL halfway, then rerun -----------------------------------------------


def _slow(peer: SmtpPeer, seconds: float) -> None:
    """Make the peer take `seconds` per message (so a send is in flight when killed)."""
    original = peer.handler.handle_DATA

    async def handle_DATA(server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
        await asyncio.sleep(seconds)
        return await original(server, session, envelope)

    peer.handler.handle_DATA = handle_DATA


def _cli(project: Path, *args: str, env: dict) -> subprocess.Popen:
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "newsletter", *args], cwd=project, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


SEND_ALL = ("send", ISSUE, "--all", "--yes", "--force", "--offline")


def start_send_to_slow_peer(project: Path, monkeypatch, peer: SmtpPeer, *, subscribers: int,
                            connections: int, until: int):
    """`send --all` in a subprocess, 20 a batch, to a peer taking 10 ms a message; returns
    once `until` messages arrived: (settings, emails, env, proc)."""
    toml = project / "newsletter.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("batch_size = 1000",
                                                             "batch_size = 20"),
                    encoding="utf-8")
    _slow(peer, 0.01)
    env = {"NEWSLETTER_PROVIDER": "smtp", "SMTP_URL": peer.url(),
           "NEWSLETTER_CONNECTIONS": str(connections)}
    monkeypatch.setenv("NEWSLETTER_PROVIDER", "smtp")
    monkeypatch.setenv("SMTP_URL", peer.url())
    settings = fresh_settings(project)
    emails = add_subscribers(settings.db_path, subscribers)
    proc = _cli(project, *SEND_ALL, env=env)
    deadline = time.monotonic() + 60
    while len(peer.messages) < until and proc.poll() is None:
        assert time.monotonic() < deadline, "the send did not get going"
        time.sleep(0.01)
    return settings, emails, env, proc


@pytest.mark.slow
def test_killed_halfway_then_rerun_no_duplicates(project, monkeypatch):
    with SmtpPeer() as peer:
        settings, emails, env, proc = start_send_to_slow_peer(
            project, monkeypatch, peer, subscribers=400, connections=2, until=150)
        args = SEND_ALL
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        assert 150 <= len(peer.messages) < 400, "killed halfway"
        c = counts(settings.db_path)
        assert c["in_flight"] > 0  # the dead process had batches on the wire

        rerun = _cli(project, *args, env=env)
        out, err = rerun.communicate(timeout=120)
        got = Counter(r for m in peer.messages for r in m.rcpt_tos)
        assert max(got.values()) == 1, "someone received two copies"
        conn = open_store(settings.db_path).conn
        state = dict(conn.execute("SELECT email, state FROM sends").fetchall())
        assert set(state) == set(emails)
        assert set(state.values()) <= {"sent", "unknown"}
        unknown = [e for e, s in state.items() if s == "unknown"]
        assert unknown, "some were in flight when killed"
        assert all(got[e] == 1 for e, s in state.items() if s == "sent")
        assert rerun.returncode == 1  # unknowns are reported ...
        assert f"{len(unknown)} recipient(s) with an unknown outcome" in err
        assert unknown[0] in err

        # ... and resent on purpose.
        final = _cli(project, *args, "--retry-unknown", env=env)
        out, err = final.communicate(timeout=120)
        assert final.returncode == 0, err
        got = Counter(r for m in peer.messages for r in m.rcpt_tos)
        assert set(got) == set(emails)
        twice = {e for e, n in got.items() if n > 1}
        assert twice <= set(unknown)  # only those whose fate was unknown can have two
        assert counts(settings.db_path)["sent"] == 400


@pytest.mark.slow
def test_killed_during_a_sendgrid_request_then_rerun(project, sendgrid):
    """SIGKILL while SendGrid holds a request unanswered: that batch is unknown (SendGrid may
    have it), the rest is sent once on the rerun, and --retry-unknown resends only it."""
    settings = fresh_settings(project)
    emails = add_subscribers(settings.db_path, 3000)
    env = {"NEWSLETTER_PROVIDER": "sendgrid", "SENDGRID_API_KEY": KEY,
           "SENDGRID_API_HOST": sendgrid.url}
    sendgrid.fail_next("202")
    sendgrid.fail_next("hang", seconds=30)
    args = ("send", ISSUE, "--all", "--yes", "--force", "--offline")
    proc = _cli(project, *args, env=env)
    deadline = time.monotonic() + 60
    while len(sendgrid.requests) < 2 and proc.poll() is None:
        assert time.monotonic() < deadline, "the send did not get going"
        time.sleep(0.02)
    time.sleep(0.2)  # the second request is now held by the endpoint
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    in_hung = [p["to"][0]["email"] for p in sendgrid.requests[1].body["personalizations"]]

    out, err = _cli(project, *args, env=env).communicate(timeout=120)
    got = Counter(recipients_of(sendgrid))  # every request SendGrid received, hung one too
    assert set(got) == set(emails) and max(got.values()) == 1
    conn = open_store(settings.db_path).conn
    state = dict(conn.execute("SELECT email, state FROM sends").fetchall())
    assert sorted(e for e, s in state.items() if s == "unknown") == sorted(in_hung)
    assert all(s == "sent" for e, s in state.items() if e not in in_hung)
    assert "1000 recipient(s) with an unknown outcome" in err

    final = _cli(project, *args, "--retry-unknown", env=env)
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err
    got = Counter(recipients_of(sendgrid))
    assert {e for e, n in got.items() if n == 2} == set(in_hung)
    assert counts(settings.db_path)["sent"] == 3000


def test_sendgrid_request_on_the_wire_is_plain_json(project):
    """What the provider writes on the socket: one Content-Type header, exactly
    `application/json` (SendGrid answers 415 to a charset parameter), and the JSON body of
    its personalizations, byte for byte as announced by Content-Length."""
    import json
    import socket
    import threading

    from newsletter.deliver.campaign import Campaign, Recipient
    from newsletter.deliver.providers.sendgrid import SendGridProvider

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    seen: dict[str, bytes] = {}

    def serve_one() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            while len(body) < length:
                body += conn.recv(65536)
            seen.update(head=head, body=body)
            conn.sendall(b"HTTP/1.1 202 Accepted\r\nX-Message-Id: wire\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        provider = SendGridProvider(KEY, host=f"http://127.0.0.1:{listener.getsockname()[1]}",
                                    timeout=10)
        campaign = Campaign("2011-05", "Subject", "<p>{{unsubscribe_url}}</p>",
                            "{{unsubscribe_url}}", "news@example.org", "News")
        url = "https://example.org/unsubscribe?t=abc"
        results = provider.send_batch(campaign, [Recipient("ann@example.org", "Ann", url),
                                                 Recipient("bob@example.org", None, url)])
        thread.join(10)
    finally:
        listener.close()
    assert [r.message_id for r in results] == ["wire", "wire"]
    types = [line.split(b":", 1)[1].strip() for line in seen["head"].split(b"\r\n")
             if line.lower().startswith(b"content-type:")]
    assert types == [b"application/json"]
    body = json.loads(seen["body"])
    assert [p["to"] for p in body["personalizations"]] == [
        [{"email": "ann@example.org", "name": "Ann"}], [{"email": "bob@example.org"}]]

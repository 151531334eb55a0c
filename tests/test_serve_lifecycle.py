"""newsletter.subscribers.lifecycle on its own (no HTTP): events, opt-in edge cases, stats; and the
`newsletter serve` command as a user starts it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from newsletter.deliver.events import EventKind
from newsletter.deliver.providers.sendgrid_webhook import event_issue as _sendgrid_issue
from newsletter.deliver.providers.sendgrid_webhook import parse_event
from newsletter.subscribers import lifecycle


def add(store, email: str, status: str = "active") -> None:
    store.subscribers.add(email, status=status, consent_source="test")


# SendGrid's JSON -> neutral events (the SendGrid provider's parser) -> the subscriber rules.


def _sendgrid_events(payload: list):
    events = [parse_event(item) for item in payload]
    return [e for e in events if e is not None], sum(e is None for e in events)

def test_event_issue_from_custom_args_or_categories() -> None:
    assert _sendgrid_issue({"issue": "2011-05"}) == "2011-05"
    assert _sendgrid_issue({"custom_args": {"issue": "2011-06"}}) == "2011-06"
    assert _sendgrid_issue({"category": ["newsletter", "2011-07"]}) == "2011-07"
    assert _sendgrid_issue({"category": "confirm"}) == "confirm"
    assert _sendgrid_issue({"category": [1, None]}) is None
    assert _sendgrid_issue({}) is None
    # A test send's copy belongs to no issue (its opens must not count in `status`).
    assert _sendgrid_issue({"issue": "2011-05", "test": "1", "category": ["2011-05"]}) \
        is None
    assert _sendgrid_issue({"custom_args": {"issue": "2011-05", "test": "1"}}) is None


def test_blocked_bounce_is_recorded_but_does_not_suppress(store) -> None:
    add(store, "ann@example.org")
    events, invalid = _sendgrid_events([
        {"sg_event_id": "b1", "event": "bounce", "type": "blocked", "email": "ann@example.org",
         "issue": "2011-05", "reason": "421 try later"}])
    assert invalid == 0 and events[0].kind == EventKind.BOUNCED and events[0].temporary
    out = lifecycle.apply_events(store, events)
    assert out.new == 1 and out.suppressed == 0
    assert store.subscribers.get("ann@example.org").status == "active"


def test_malformed_events_are_counted_invalid_and_skipped(store) -> None:
    add(store, "ann@example.org")
    payload = [None, 7, "x", [], {"event": "bounce", "email": "ann@example.org"},
               {"sg_event_id": "e1", "event": "bounce", "email": "not an address"},
               {"sg_event_id": "e2", "event": "bounce", "email": 5},
               {"sg_event_id": "", "event": "bounce", "email": "ann@example.org"},
               {"sg_event_id": "e3", "event": "open", "email": "ANN@Example.org",
                "timestamp": True, "issue": "s" * 5000}]
    events, invalid = _sendgrid_events(payload)
    out = lifecycle.apply_events(store, events, invalid=invalid)
    assert (out.received, out.invalid, out.new) == (9, 8, 1)
    (kept,) = events
    assert (kept.email, kept.timestamp, len(kept.issue)) == ("ann@example.org", None, 200)
    assert store.events.counts("s" * 200)[EventKind.OPENED].events == 1
    assert store.subscribers.get("ann@example.org").status == "active"


# The subscriber rules

def test_unsubscribe_keeps_a_suppressed_address_suppressed(store) -> None:
    add(store, "ann@example.org", status="suppressed")
    done = lifecycle.unsubscribe(store, "ann@example.org", "link", "one-click")
    assert done.outcome == "already"
    assert store.subscribers.get("ann@example.org").status == "suppressed"


def test_a_form_post_never_rewrites_an_active_consent_record(store) -> None:
    store.subscribers.add("ann@example.org", consent_source="import:list.csv")
    before = store.subscribers.get("ann@example.org")
    out = store.write(lambda tx: lifecycle.subscribe_request(
        tx, "ann@example.org", "Mallory", "6.6.6.6", "x"))
    assert out.send_confirmation is False and out.status == "active"
    assert store.subscribers.get("ann@example.org") == before


def test_confirm_without_an_open_request_does_nothing(store) -> None:
    add(store, "imported@example.org", status="unsubscribed")
    assert store.write(lambda tx: lifecycle.confirm(tx, "imported@example.org")) == "nothing"
    assert store.subscribers.get("imported@example.org").status == "unsubscribed"


def test_a_form_request_then_confirm_resubscribes_an_unsubscribed_address(store) -> None:
    add(store, "ann@example.org", status="unsubscribed")
    out = lifecycle.subscribe_request(store, "Ann@Example.org", " Ann ", "192.0.2.1", "f")
    assert out.status == "unsubscribed" and out.send_confirmation
    assert store.subscribers.get("ann@example.org").status == "unsubscribed"  # not yet
    assert lifecycle.confirm(store, "ann@example.org") == "confirmed"
    ann = store.subscribers.get("ann@example.org")
    assert ann.status == "active" and ann.consent_ip == "192.0.2.1" and ann.name == "Ann"
    assert lifecycle.confirm(store, "ann@example.org") == "already"


# -- the command --------------------------------------------------------------------------------

def _serve(project: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    root = Path(__file__).resolve().parent.parent
    environ = {**os.environ, "PYTHONPATH": str(root), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "newsletter", "serve", *args], cwd=project,
                            env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.slow
def test_serve_command_starts_answers_and_stops_on_ctrl_c(project: Path) -> None:
    proc = _serve(project, "--port", "0", "--threads", "2")
    try:
        line = proc.stderr.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))
        assert "https://newsletter.citiesofmigration.ca" in line  # the public address
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            assert resp.read() == b"ok\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(("env", "message"), [
    ({"NEWSLETTER_SECRET": ""}, "NEWSLETTER_SECRET"),
    ({"SENDGRID_WEBHOOK_PUBLIC_KEY": "bm90IGEga2V5"}, "SENDGRID_WEBHOOK_PUBLIC_KEY"),
])
@pytest.mark.slow
def test_serve_refuses_to_start_with_a_clear_message(project: Path, env, message) -> None:
    proc = _serve(project, "--port", "0", env=env)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_serve_reports_a_port_in_use(project: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _serve(project, "--port", str(port))
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


@pytest.mark.slow
def test_serve_reports_a_host_it_cannot_listen_on(project: Path) -> None:
    # .invalid never resolves (RFC 6761); waitress raised ValueError, shown as a traceback
    proc = _serve(project, "--host", "no-such-host.invalid", "--port", "0")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "Traceback" not in err, err
    assert err.strip() == ("cannot listen on no-such-host.invalid:0: "
                           "unknown host name")


def test_serve_and_archive_help_have_examples() -> None:
    from click.testing import CliRunner

    from newsletter.cli import main

    for command in ("serve", "archive"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output

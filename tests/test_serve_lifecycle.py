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

from newsletter import store
from newsletter.subscribers import lifecycle
from newsletter.subscribers.lifecycle import transaction


@pytest.fixture
def conn(tmp_path: Path):
    c = store.connect(tmp_path / "db.sqlite")
    yield c
    c.close()


def add(conn, email: str, status: str = "active") -> None:
    store.add_subscriber(conn, email, status=status, consent_source="test")


def test_event_issue_from_custom_args_or_categories() -> None:
    assert lifecycle.event_issue({"issue": "2011-05"}) == "2011-05"
    assert lifecycle.event_issue({"custom_args": {"issue": "2011-06"}}) == "2011-06"
    assert lifecycle.event_issue({"category": ["newsletter", "2011-07"]}) == "2011-07"
    assert lifecycle.event_issue({"category": "confirm"}) == "confirm"
    assert lifecycle.event_issue({"category": [1, None]}) is None
    assert lifecycle.event_issue({}) is None
    # events of test sends (custom_args test=1) belong to no issue: not counted by `status`
    assert lifecycle.event_issue({"issue": "2011-05", "test": "1", "category": ["2011-05"]}) \
        is None
    assert lifecycle.event_issue({"custom_args": {"issue": "2011-05", "test": "1"}}) is None


def test_blocked_bounce_is_recorded_but_does_not_suppress(conn) -> None:
    add(conn, "ann@example.org")
    with transaction(conn):
        out = lifecycle.apply_events(conn, [
            {"sg_event_id": "b1", "event": "bounce", "type": "blocked", "email": "ann@example.org",
             "issue": "2011-05", "reason": "421 try later"},
        ])
    assert out.new == 1 and out.suppressed == 0
    assert store.get_subscriber(conn, "ann@example.org").status == "active"


def test_malformed_events_are_counted_invalid_and_skipped(conn) -> None:
    add(conn, "ann@example.org")
    events = [None, 7, "x", [], {"event": "bounce", "email": "ann@example.org"},
              {"sg_event_id": "e1", "event": "bounce", "email": "not an address"},
              {"sg_event_id": "e2", "event": "bounce", "email": 5},
              {"sg_event_id": "", "event": "bounce", "email": "ann@example.org"},
              {"sg_event_id": "e3", "event": "open", "email": "ANN@Example.org",
               "timestamp": True, "issue": "s" * 5000}]
    with transaction(conn):
        out = lifecycle.apply_events(conn, events)
    assert (out.received, out.invalid, out.new) == (9, 8, 1)
    row = conn.execute("SELECT email, timestamp, length(issue) FROM events").fetchone()
    assert tuple(row) == ("ann@example.org", None, 200)
    assert store.get_subscriber(conn, "ann@example.org").status == "active"


def test_unsubscribe_keeps_a_suppressed_address_suppressed(conn) -> None:
    add(conn, "ann@example.org", status="suppressed")
    with transaction(conn):
        assert lifecycle.unsubscribe(conn, "ann@example.org", "link", "one-click") is False
    assert store.get_subscriber(conn, "ann@example.org").status == "suppressed"


def test_a_form_post_never_rewrites_an_active_consent_record(conn) -> None:
    store.add_subscriber(conn, "ann@example.org", consent_source="import:list.csv",
                         consent_ip=None)
    before = store.get_subscriber(conn, "ann@example.org")
    with transaction(conn):
        out = lifecycle.subscribe_request(conn, "ann@example.org", "Mallory", "6.6.6.6", "x")
    assert out.send_confirmation is False and out.status == "active"
    assert store.get_subscriber(conn, "ann@example.org") == before


def test_confirm_without_an_open_request_does_nothing(conn) -> None:
    add(conn, "imported@example.org", status="unsubscribed")
    with transaction(conn):
        assert lifecycle.confirm(conn, "imported@example.org") == "nothing"
    assert store.get_subscriber(conn, "imported@example.org").status == "unsubscribed"


def test_issue_stats_counts_events_and_later_unsubscribes(conn) -> None:
    for e in ("a@example.org", "b@example.org"):
        add(conn, e)
    conn.execute("INSERT INTO sends (issue, email, state, updated_at) VALUES "
                 "('2011-05', 'a@example.org', 'sent', '2011-05-18T10:00:00Z'), "
                 "('2011-05', 'b@example.org', 'sent', '2011-05-18T10:00:00Z')")
    with transaction(conn):
        lifecycle.unsubscribe(conn, "a@example.org", "link", "one-click")
        lifecycle.apply_events(conn, [
            {"sg_event_id": "1", "event": "open", "email": "b@example.org", "issue": "2011-05"},
            {"sg_event_id": "2", "event": "open", "email": "b@example.org", "issue": "2011-05"},
            {"sg_event_id": "3", "event": "click", "email": "b@example.org", "issue": "2011-05"},
            {"sg_event_id": "4", "event": "open", "email": "b@example.org", "issue": "2011-06"},
        ])
    stats = lifecycle.issue_stats(conn, "2011-05")
    assert stats == {"sent": 2, "open": 2, "unique_open": 1, "click": 1, "unique_click": 1,
                     "unsubscribed": 1}


# -- the command --------------------------------------------------------------------------------

def _serve(project: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    root = Path(__file__).resolve().parent.parent
    environ = {**os.environ, "PYTHONPATH": str(root), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "newsletter", "serve", *args], cwd=project,
                            env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


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
def test_serve_refuses_to_start_with_a_clear_message(project: Path, env, message) -> None:
    proc = _serve(project, "--port", "0", env=env)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


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

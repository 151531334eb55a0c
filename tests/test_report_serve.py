"""`newsletter report` from what really arrives: an issue sent to the ledger, SendGrid's signed
Event Webhook posted to the serve app (waitress on 127.0.0.1), then the table and the HTML page
(loaded in chromium)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.deliver import sender
from newsletter.web.app import create_app
from tests.support.sending import RecordingProvider, add_subscribers, rendered
from tests.support.serve import call, keypair, running, signed_headers

STORY = "https://citiesofmigration.ca/calgary?utm_source=newsletter&utm_medium=email"


def post(base: str, private, events: list[dict]) -> None:
    body = json.dumps(events).encode()
    reply = call(base, "POST", "/webhooks/sendgrid", body,
                 signed_headers(private, body, str(int(time.time()))))
    assert reply.status == 200, reply.body


def sendgrid(kind: str, email: str, n: int, when: int, **extra) -> dict:
    return {"sg_event_id": f"{kind}-{email}-{n}", "event": kind, "email": email,
            "timestamp": when, "issue": "2011-05", "category": ["2011-05"], **extra}


@pytest.fixture
def reported(project: Path, monkeypatch: pytest.MonkeyPatch):
    """20 readers sent the issue, then their events through the signed webhook."""
    private, public = keypair()
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", public)
    settings = load_settings(project / "newsletter.toml")
    readers = add_subscribers(settings.db_path, 20)
    sender.send_all(rendered(), settings, RecordingProvider())
    t0 = int(time.time())
    events = [sendgrid("delivered", r, 0, t0 + 5) for r in readers[:18]]
    events += [sendgrid("bounce", readers[18], 0, t0 + 6, reason="550 no such user"),
               sendgrid("bounce", readers[19], 0, t0 + 6, type="blocked", reason="421 later")]
    events += [sendgrid("open", r, i, t0 + 60 * i) for i, r in enumerate(readers[:9])]
    events += [sendgrid("open", readers[0], 99, t0 + 3600 * 30)]  # again, on day two
    events += [sendgrid("click", r, 0, t0 + 120, url=STORY) for r in readers[:4]]
    events += [sendgrid("click", readers[0], 1, t0 + 130,
                        url="https://citiesofmigration.ca/archive/")]
    events += [sendgrid("spamreport", readers[5], 0, t0 + 300),
               sendgrid("unsubscribe", readers[6], 0, t0 + 400)]
    with running(create_app(settings)) as base:
        post(base, private, events[:20])
        post(base, private, events[20:])
        post(base, private, events[20:])  # a replay changes nothing
    return project


def test_report_table_from_webhook_events(reported: Path):
    result = CliRunner().invoke(main, ["report", "issues/2011-05.yaml"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines()
             if line.startswith("  ") and line.split()}
    assert lines["delivered"][1:] == ["18", "90.0%", "sent"]
    assert lines["bounced"][1:] == ["1", "5.0%", "sent"]  # the "blocked" one is temporary
    assert lines["opened"][2:] == ["9", "50.0%", "delivered"]  # "opened *"
    assert lines["clicked"][1:] == ["4", "22.2%", "delivered"]
    assert lines["unsubscribed"][1:] == ["1", "5.6%", "delivered"]
    assert lines["complaints"][1:] == ["1", "5.6%", "delivered"]
    assert "https://citiesofmigration.ca/calgary" in result.stdout
    assert "utm_source" not in result.stdout
    assert "Apple Mail Privacy Protection" in result.stdout


@pytest.mark.browser
def test_html_report_from_webhook_events_in_chromium(reported: Path):
    from tests.test_report_browser import CHROMIUM, check_report_page

    result = CliRunner().invoke(main, ["report", "issues/2011-05.yaml", "--html",
                                       "report.html"])
    assert result.exit_code == 0, result.output
    page = (reported / "report.html").read_text(encoding="utf-8")
    assert "90.0%" in page and "https://citiesofmigration.ca/calgary</td>" in page
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent")
    check_report_page(reported / "report.html")


def test_report_of_an_unknown_issue_is_one_line(project: Path):
    result = CliRunner().invoke(main, ["report", "issues/2011-5.yaml"])
    assert result.exit_code == 1
    assert "file not found" in result.stderr and len(result.stderr.strip().splitlines()) == 1

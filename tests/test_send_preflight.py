"""The send rules as a library: deliver.preflight without click (what the CLI, the preview's
Send panel and a scheduler use)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from newsletter.deliver import preflight as pf
from newsletter.deliver import sender
from tests.support.sending import RecordingProvider, add_subscribers, rendered


def codes(found) -> list[str]:
    return [p.code for p in found.problems]


def test_configuration_problems_cannot_be_forced(settings) -> None:
    assert pf.settings_problems(settings) == []
    broken = replace(settings, public_url="http://example.org",
                     env={**settings.env, "NEWSLETTER_SECRET": "",
                          "NEWSLETTER_PROVIDER": "smtp"})
    problems = pf.settings_problems(broken)
    assert [p.code for p in problems] == [pf.SECRET, pf.PUBLIC_URL, pf.PROVIDER]
    assert not any(p.overridable for p in problems)
    assert "SMTP_URL" in problems[2].message and "links.public" in problems[1].message
    found = pf.preflight(rendered(), broken, findings=[])
    assert not found.ok(force=True) and not found.checked


def test_nobody_to_send_to(settings) -> None:
    found = pf.preflight(rendered(), settings, findings=[])
    assert codes(found) == [pf.NO_SUBSCRIBERS] and not found.ok(force=True)


def test_reviewers_must_have_seen_this_content(settings) -> None:
    add_subscribers(settings.db_path, 3)
    issue = rendered()
    found = pf.preflight(issue, settings, findings=[])
    assert codes(found) == [pf.NOT_REVIEWED]
    assert (found.recipients, found.active) == (3, 3)
    assert not found.ok() and found.ok(force=True)
    assert found.where.startswith("into ")

    sender.send_test(issue, settings, provider=RecordingProvider())
    found = pf.preflight(issue, settings, findings=[])
    assert found.ok() and found.review is not None and found.review.same_content

    changed = replace(issue, html=issue.html + "<p>late edit</p>")
    found = pf.preflight(changed, settings, findings=[])
    assert codes(found) == [pf.CONTENT_CHANGED] and found.problems[0].overridable
    assert "reviewers have not seen exactly this content" in found.problems[0].message


@pytest.mark.parametrize("level", ["error", "warning"])
def test_check_errors_block_unless_forced(settings, level) -> None:
    from newsletter.checks.findings import Finding

    add_subscribers(settings.db_path, 1)
    issue = rendered()
    sender.send_test(issue, settings, to=["me@example.org"])
    finding = Finding(level=level, category="links", message="404", where=None)
    found = pf.preflight(issue, settings, findings=[finding])
    assert codes(found) == ([pf.CHECKS] if level == "error" else [])
    assert found.ok(force=True)


def test_the_preview_send_panel_shows_the_same_verdict(settings) -> None:
    from newsletter.preview.server import full_send_status

    issue = rendered()
    status = full_send_status(issue, settings, [])
    assert status["ready"] is False
    assert [p["code"] for p in status["problems"]] == [pf.NO_SUBSCRIBERS]
    add_subscribers(settings.db_path, 2)
    sender.send_test(issue, settings, provider=RecordingProvider())
    status = full_send_status(issue, settings, [])
    assert status["ready"] is True and (status["recipients"], status["active"]) == (2, 2)
    assert status["where"].startswith("into ")

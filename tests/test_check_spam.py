"""SpamAssassin (Debian's `spamassassin`, local rules only) on the message as it would go out."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from newsletter.checks import run_checks
from newsletter.checks.spam import build_eml, check_spam, parse_report
from tests.support.checks import by, rendered

# The only tests that run SpamAssassin: the project fixture turns it off everywhere else.
pytestmark = pytest.mark.spamassassin

needs_spamassassin = pytest.mark.skipif(
    shutil.which("spamassassin") is None,
    reason="spamassassin is not installed (Debian: apt-get install spamassassin; .ci/run "
    "installs it)",
)

NORMAL_HTML = """
<h2>Calgary: Talking Mentoring</h2>
<p style="color:#222222">On May 5 and 6, ALLIES held a mentoring conference in Calgary to
celebrate the successes of current mentoring initiatives. Participants shared their
experiences, explored new opportunities, and continued to build mentoring initiatives that
impact the lives of skilled immigrants and local employers across the country.</p>
<p style="color:#222222">Read <a href="https://citiesofmigration.ca/calgary" style="color:#1d5b79">
the Calgary conference report</a> on our website.</p>
"""
NORMAL_TEXT = """Calgary: Talking Mentoring
==========================

On May 5 and 6, ALLIES held a mentoring conference in Calgary to celebrate the successes of
current mentoring initiatives. Participants shared their experiences, explored new
opportunities, and continued to build mentoring initiatives that impact the lives of skilled
immigrants and local employers across the country.

Read the Calgary conference report: https://citiesofmigration.ca/calgary
"""

SPAM_SENTENCES = (
    "YOU HAVE BEEN SELECTED! Dear Friend, CONGRATULATIONS!!! You are a WINNER of "
    "$1,000,000 US DOLLARS cash prize. Act now! This is a limited time offer, 100% FREE, "
    "no credit check, risk free, satisfaction guaranteed. Buy cheap viagra and cialis online, "
    "no prescription needed. Lose weight fast! Work from home and earn $5000 per week. "
    "Send your bank account details and social security number to claim your lottery "
    "winnings. Double your income! Get out of debt. Order now while supplies last!"
)
SPAM_SUBJECT = "FREE CASH!!! YOU ARE A WINNER - ACT NOW $$$"


@pytest.mark.slow
@needs_spamassassin
def test_a_normal_issue_scores_low_and_is_a_note(settings) -> None:
    r = rendered(NORMAL_HTML, NORMAL_TEXT, settings)
    [f] = check_spam(r, settings)
    assert f.level == "note" and f.category == "spam"
    assert "SpamAssassin score" in f.message


@pytest.mark.slow
@needs_spamassassin
def test_a_spammy_message_is_an_error_with_its_top_rules(settings) -> None:
    r = rendered(f'<p style="color:#222222">{SPAM_SENTENCES}</p>', SPAM_SENTENCES, settings,
                 subject=SPAM_SUBJECT)
    findings = run_checks(r, settings, offline=True)
    [f] = by(findings, "spam")
    assert f.level == "error", f
    score = float(f.message.split("scores this ")[1].split(" ")[0])
    assert score >= 5.0
    assert "top rules:" in f.message and "NO_PRESCRIPTION" in f.message


def test_without_spamassassin_a_note_says_so(settings, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: nothing is on PATH
    [f] = check_spam(rendered(NORMAL_HTML, NORMAL_TEXT, settings), settings)
    assert f.level == "note" and "not installed" in f.message


def test_the_scored_message_is_multipart_with_unsubscribe_filled(settings) -> None:
    from email import message_from_bytes, policy

    eml = build_eml(rendered(NORMAL_HTML, NORMAL_TEXT, settings), settings)
    msg = message_from_bytes(eml, policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["List-Unsubscribe"]
    html = msg.get_body(("html",)).get_content()
    assert "{{unsubscribe_url}}" not in html and "/unsubscribe?t=" in html


def test_report_parsing() -> None:
    report = """X-Spam-Status: Yes, score=7.1 required=5.0 tests=A,B
Content analysis details:   (7.1 points, 5.0 required)

 pts rule name              description
---- ---------------------- --------------------------------------------------
 1.9 NO_PRESCRIPTION        BODY: No prescription needed
 0.5 SUBJ_ALL_CAPS          Subject is all capitals
-0.0 NO_RELAYS              Informational: message was not relayed via SMTP
 2.0 LONG_RULE              A description that goes on and on and wraps onto
                            a second line
"""
    score = parse_report(report)
    assert score is not None and score.score == 7.1 and score.required == 5.0
    assert [r.name for r in score.top(2)] == ["LONG_RULE", "NO_PRESCRIPTION"]
    assert score.top(1)[0].description.endswith("wraps onto a second line")
    assert parse_report("no report here") is None


def test_off_skips_the_spam_check_and_says_so(settings) -> None:
    off = dataclasses.replace(settings, env={**settings.env, "NEWSLETTER_SPAMASSASSIN": "off"})
    [f] = check_spam(rendered(NORMAL_HTML, NORMAL_TEXT, off), off)
    assert f.level == "note" and "NEWSLETTER_SPAMASSASSIN is off" in f.message


def test_the_named_program_is_the_one_run(settings, tmp_path) -> None:
    missing = str(tmp_path / "no-such-spamassassin")
    named = dataclasses.replace(settings, env={**settings.env, "NEWSLETTER_SPAMASSASSIN": missing})
    [f] = check_spam(rendered(NORMAL_HTML, NORMAL_TEXT, named), named)
    assert f.level == "warning" and "could not run" in f.message, f

"""Link and image requests against a real server on 127.0.0.1: each kind of answer becomes the
right finding, naming the link text and the story it sits in."""

from __future__ import annotations

import socket
import time
import urllib.error

import pytest

from newsletter.checks import run_checks
from newsletter.checks.http import _why, probe, probe_all
from newsletter.config import load_settings
from tests.conftest import ROOT
from tests.support.check_server import link_server, running  # noqa: F401  (fixture)
from tests.support.checks import assert_only_local, by, local_settings, rendered

TIMEOUT = 3.0  # /slow never answers; generous enough for a loaded CI machine


def _links_email(server, settings):
    u = server.url
    html = (
        "<h2>Calgary: Talking Mentoring</h2>"
        f'<p>See the <a href="{u("/ok")}?utm_source=newsletter">conference report</a>, '
        f'the <a href="{u("/moved")}">moved programme</a> and '
        f'the <a href="{u("/missing")}">lost agenda</a>.</p>'
        "<h2>Christchurch: Post-Earthquake Report</h2>"
        f'<p><a href="{u("/broken")}">Earthquake figures</a> '
        f'<a href="{u("/slow")}">Slow archive</a> '
        f'<a href="{u("/head-refused")}">Recovery plan</a> '
        f'<a href="{u("/moved-to-missing")}">Old survey</a></p>'
    )
    text = "\n".join([
        "Calgary: Talking Mentoring", "==========================",
        f"conference report: {u('/ok')}", f"moved programme: {u('/moved')}",
        f"lost agenda: {u('/missing')}",
        "Christchurch: Post-Earthquake Report", "====================================",
        f"Earthquake figures: {u('/broken')}", f"Slow archive: {u('/slow')}",
        f"Recovery plan: {u('/head-refused')}", f"Old survey: {u('/moved-to-missing')}",
        f"Only in the text part: {u('/missing-from-text')}",
    ])
    return rendered(html, text, settings)


@pytest.fixture(scope="module")
def link_findings():
    """One check run over every kind of answer, shared by the tests that read its findings."""
    with pytest.MonkeyPatch.context() as mp, running() as server:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        settings = local_settings(load_settings(ROOT / "newsletter.toml", environ={}), server)
        r = _links_email(server, settings)
        assert_only_local(r, server)
        started = time.monotonic()
        findings = run_checks(r, settings, timeout=TIMEOUT, spam=False)
        yield findings, time.monotonic() - started, server


def _one(findings, needle: str):
    """The one links finding about exactly this URL (it ends the message, or the redirect's
    "(from URL)")."""
    found = [f for f in findings if f.category == "links"
             and (f.message.endswith(": " + needle) or f.message.endswith(f"(from {needle})"))]
    assert len(found) == 1, (needle, findings)
    return found[0]


@pytest.mark.slow
def test_a_404_is_an_error_naming_link_text_and_story(link_findings) -> None:
    findings, _, server = link_findings
    f = _one(findings, server.url("/missing"))
    assert f.level == "error"
    assert '"lost agenda"' in f.message and "404" in f.message
    assert 'in "Calgary: Talking Mentoring"' in f.message
    assert f.where == "Calgary: Talking Mentoring"


def test_a_500_is_an_error(link_findings) -> None:
    findings, _, server = link_findings
    f = _one(findings, server.url("/broken"))
    assert f.level == "error"
    assert "500" in f.message and '"Earthquake figures"' in f.message
    assert f.where == "Christchurch: Post-Earthquake Report"


def test_a_link_that_never_answers_is_a_timeout_error(link_findings) -> None:
    findings, elapsed, server = link_findings
    f = _one(findings, server.url("/slow"))
    assert f.level == "error"
    assert "timed out" in f.message and '"Slow archive"' in f.message
    assert f.where == "Christchurch: Post-Earthquake Report"
    # One timeout, not two: a HEAD that timed out is not asked again with GET.
    assert elapsed < 2 * TIMEOUT, f"the check took {elapsed:.1f} s"


def test_a_redirect_is_a_note_with_its_target(link_findings) -> None:
    findings, _, server = link_findings
    f = _one(findings, server.url("/moved"))
    assert f.level == "note"
    assert "301" in f.message and server.url("/ok/target") in f.message
    assert '"moved programme"' in f.message


def test_a_redirect_to_a_broken_page_is_an_error(link_findings) -> None:
    findings, _, server = link_findings
    f = _one(findings, server.url("/moved-to-missing"))
    assert f.level == "error"
    assert "404" in f.message and '"Old survey"' in f.message


def test_head_refused_falls_back_to_get(link_findings) -> None:
    findings, _, server = link_findings
    # (the test server speaks http://: only that warning, from the security check, is left)
    assert not [f for f in findings if server.url("/head-refused") in f.message
                and f.category != "security"]
    asked = [m for m, p in server.requests if p == "/head-refused"]
    assert asked == ["HEAD", "GET"]


def test_a_working_link_gives_no_finding_and_each_url_is_asked_once(link_findings) -> None:
    findings, _, server = link_findings
    ok = server.url("/ok") + "?utm_source=newsletter"
    assert not [f for f in findings if f.message.endswith(ok) and f.category != "security"]
    # /broken is in both parts: one request (HEAD, then GET to confirm the error).
    assert [m for m, p in server.requests if p == "/broken"] == ["HEAD", "GET"]


def test_a_link_only_in_the_text_part_is_checked_too(link_findings) -> None:
    findings, _, server = link_findings
    f = _one(findings, server.url("/missing-from-text"))
    assert f.level == "error" and "text part" in f.message
    assert '"Only in the text part"' in f.message


def test_offline_requests_nothing_and_says_so(link_server, settings) -> None:  # noqa: F811
    findings = run_checks(_links_email(link_server, settings), settings, offline=True,
                          spam=False)
    assert link_server.requests == []
    notes = by(findings, "links")
    assert len(notes) == 1 and notes[0].level == "note" and "not checked" in notes[0].message


def test_requests_run_concurrently_and_bounded(link_server) -> None:  # noqa: F811
    urls = [link_server.url(f"/slow?n={i}") for i in range(8)]
    started = time.monotonic()
    results = probe_all(urls, timeout=0.5, concurrency=8)
    elapsed = time.monotonic() - started
    assert all(r.reason == "timed out" for r in results.values())
    assert elapsed < 3.0, f"8 timeouts of 0.5 s took {elapsed:.1f} s: not concurrent"


def test_dns_failure_is_named() -> None:
    # Classifying the resolver's own exception (a real lookup would need the network).
    assert _why(urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))) \
        == "DNS lookup failed (no such host)"
    assert _why(urllib.error.URLError(ConnectionRefusedError())) == "connection refused"


def test_a_refused_connection_is_an_error() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = probe(f"http://127.0.0.1:{port}/", timeout=TIMEOUT)
    assert result.failed and result.status is None
    assert result.reason == "connection refused"


# -- images ------------------------------------------------------------------------------------


def _image_email(server, settings, img: str):
    r = rendered(f"<h2>Calgary: Talking Mentoring</h2>{img}", "", settings)
    assert_only_local(r, server)
    return r


def test_a_reachable_image_with_alt_and_width_passes(link_server, settings) -> None:  # noqa: F811
    img = f'<img src="{link_server.url("/img.png")}" alt="Roundtable in Calgary" width="600">'
    settings = local_settings(settings, link_server)
    findings = run_checks(_image_email(link_server, settings, img), settings,
                          timeout=TIMEOUT, spam=False)
    assert by(findings, "images") == []


def test_a_missing_image_is_an_error(link_server, settings) -> None:  # noqa: F811
    img = f'<img src="{link_server.url("/gone.png")}" alt="Roundtable in Calgary" width="600">'
    settings = local_settings(settings, link_server)
    findings = run_checks(_image_email(link_server, settings, img), settings,
                          timeout=TIMEOUT, spam=False)
    [f] = by(findings, "images")
    assert f.level == "error" and "404" in f.message and "Roundtable in Calgary" in f.message
    assert f.where == "Calgary: Talking Mentoring"


def test_a_big_image_without_width_is_warned(link_server, settings) -> None:  # noqa: F811
    img = f'<img src="{link_server.url("/big.png")}" alt="A very large photo">'
    settings = local_settings(settings, link_server)
    findings = run_checks(_image_email(link_server, settings, img), settings,
                          timeout=TIMEOUT, spam=False)
    warnings = by(findings, "images", "warning")
    assert any("over 1 MB" in f.message for f in warnings), findings
    assert any("no width" in f.message for f in warnings), findings
    assert by(findings, "images", "error") == []


def test_an_unpublished_web_copy_is_a_warning_not_an_error(link_server, settings) -> None:  # noqa: F811
    import dataclasses

    local = dataclasses.replace(local_settings(settings, link_server),
                                view_online_url=link_server.url("/gone/{slug}.html"))
    r = rendered("<p>Hi</p>", "Hi", local)
    assert_only_local(r, link_server)
    findings = run_checks(r, local, timeout=TIMEOUT, spam=False)
    [f] = by(findings, "links")
    assert f.level == "warning" and "not online yet (404)" in f.message
    assert link_server.url("/gone/2011-05.html") in f.message


def test_a_bot_wall_is_a_warning_not_an_error(link_server, settings) -> None:  # noqa: F811
    settings = local_settings(settings, link_server)
    url = link_server.url("/bot-wall")
    r = rendered(f'<p><a href="{url}">Maytree blog</a></p>', f"Maytree blog: {url}", settings)
    assert_only_local(r, link_server)
    [f] = [f for f in by(run_checks(r, settings, timeout=TIMEOUT, spam=False), "links")
           if url in f.message]
    assert f.level == "warning" and "bot protection" in f.message and "403" in f.message


def test_a_non_ascii_link_is_requested_percent_encoded(link_server) -> None:  # noqa: F811
    result = probe(link_server.url("/ok/Zürich/北京"), timeout=TIMEOUT)
    assert result.ok, result
    assert ("HEAD", "/ok/Z%C3%BCrich/%E5%8C%97%E4%BA%AC") in link_server.requests


def test_progress_counts_each_distinct_url_once(link_server) -> None:  # noqa: F811
    urls = [link_server.url("/ok"), link_server.url("/missing"), link_server.url("/ok"),
            link_server.url("/moved")]
    calls: list[tuple[int, int]] = []
    results = probe_all(urls, timeout=TIMEOUT, progress=lambda *a: calls.append(a))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert list(results) == list(dict.fromkeys(urls))  # still in the order given
    assert probe_all([], progress=lambda *a: calls.append(a)) == {}
    assert len(calls) == 4  # nothing to do: not called


@pytest.mark.slow
def test_run_checks_reports_progress_online_only(link_server, settings) -> None:  # noqa: F811
    local = local_settings(settings, link_server)
    r = _links_email(link_server, local)
    assert_only_local(r, link_server)
    calls: list[tuple[int, int]] = []
    run_checks(r, local, offline=True, spam=False, progress=lambda *a: calls.append(a))
    assert calls == []
    run_checks(r, local, timeout=TIMEOUT, spam=False, progress=lambda *a: calls.append(a))
    total = calls[0][1]
    assert calls[0] == (0, total) and calls[-1] == (total, total) and len(calls) == total + 1
    assert [done for done, _ in calls] == list(range(total + 1))
    assert total >= 8  # the 8 distinct links of the two parts, and the rest of the email

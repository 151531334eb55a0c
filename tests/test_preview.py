"""`newsletter preview`: the real server (in-process, free port) driven by Debian's chromium.

Every browser request that is not loopback is blocked: remote images (the logo, story images)
get a local placeholder picture, anything else is aborted.

`NEWSLETTER_SCREENSHOTS=1 .venv/bin/pytest tests/test_preview.py -k screenshot` rewrites
docs/images/preview.png and docs/images/preview-phone.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from newsletter.preview.server import Preview, send_status, start_preview
from tests.support.smtp_server import SmtpPeer

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync"]
SUBJECT = "Cities of Migration – May 2011: Calgary: Talking Mentoring"
PREHEADER = "Ideas from the ALLIES mentoring conference in Calgary, and more stories from May 2011."
REVIEWERS = {"editor@citiesofmigration.ca", "comms@citiesofmigration.ca"}
UPDATE_TIMEOUT_MS = 2000  # the issue asks for "within a second"; CI machines are slower

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason=f"{CHROMIUM} is absent (apt install chromium)")

# -- fixtures ----------------------------------------------------------------------------------


def _placeholder(url: str) -> str:
    """A local picture in place of a remote one (nothing leaves the machine)."""
    if "logo" in url:
        return ('<svg xmlns="http://www.w3.org/2000/svg" width="220" height="44" '
                'viewBox="0 0 220 44"><rect x="1" y="1" width="218" height="42" rx="6" '
                'fill="none" stroke="#fff" stroke-opacity=".6" stroke-dasharray="4 3"/>'
                '<text x="110" y="28" font-family="sans-serif" font-size="14" fill="#fff" '
                'text-anchor="middle">logo</text></svg>')
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="600" height="300" '
            'viewBox="0 0 600 300"><defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
            '<stop offset="0" stop-color="#d9e2ec"/><stop offset="1" stop-color="#bcccdc"/>'
            '</linearGradient></defs><rect width="600" height="300" fill="url(#g)"/>'
            '<path d="M210 210l60-70 45 50 30-30 45 50z" fill="#9fb3c8"/>'
            '<circle cx="360" cy="110" r="18" fill="#9fb3c8"/></svg>')


def _only_loopback(route) -> None:
    request = route.request
    scheme = request.url.split(":", 1)[0]
    if scheme in ("data", "about", "blob") or urlsplit(request.url).hostname == "127.0.0.1":
        route.continue_()
    elif request.resource_type == "image":
        route.fulfill(status=200, content_type="image/svg+xml", body=_placeholder(request.url))
    else:
        route.abort()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield b
        b.close()


def _start(project: Path):
    server = start_preview(project / "issues" / "2011-05.yaml", port=0,
                           config_path=project / "newsletter.toml",
                           step_ms=30, debounce_ms=300)
    return server.start_background()


@pytest.fixture
def server(project: Path):
    srv = _start(project)
    yield srv
    srv.close()


def _open(browser, server, width: int = 1280, height: int = 900, *, bypass_csp: bool = True):
    # Playwright's polling waits evaluate strings, which the page's CSP forbids; the first test
    # opens the page under its real CSP.
    context = browser.new_context(viewport={"width": width, "height": height},
                                  bypass_csp=bypass_csp)
    context.route("**/*", _only_loopback)
    page = context.new_page()
    page.set_default_timeout(5000)
    page.goto(server.url)
    page.wait_for_function("document.querySelector('iframe.email-frame.active')"
                           "?.contentDocument?.body?.innerText?.length > 100")
    return context, page


@pytest.fixture
def page(browser, server):
    context, pg = _open(browser, server)
    yield pg
    context.close()


def _active_frame_js(expr: str) -> str:
    return ("(() => { const f = document.querySelector('iframe.email-frame.active'); "
            f"const d = f.contentDocument; return {expr}; }})()")


def _edit(path: Path, old: str, new: str, *, rename: bool = False) -> None:
    """Save like an editor: in place, or a new file renamed over the old one."""
    text = path.read_text(encoding="utf-8")
    assert old in text
    text = text.replace(old, new)
    if rename:
        tmp = path.with_name(".2011-05.yaml.swp-save")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    else:
        path.write_text(text, encoding="utf-8")


# -- the page ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
def test_page_shows_inbox_row_and_the_email(browser, server):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", _only_loopback)
    page = context.new_page()
    page.set_default_timeout(5000)
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    page.goto(server.url)

    expect(page.locator("#inbox-sender")).to_have_text("Cities of Migration")
    expect(page.locator("#inbox-subject")).to_have_text(SUBJECT)
    expect(page.locator("#inbox-preheader")).to_have_text(PREHEADER)
    expect(page.locator("#inbox-date")).to_have_text("May 18, 2011")
    frame = page.frame_locator("iframe.email-frame.active")
    expect(frame.get_by_text("Intercultural Communication").first).to_be_visible()
    # size against Gmail's limit, and the offline checks beside the email
    expect(page.locator("#size-value")).to_contain_text("KB of HTML")
    expect(page.locator("#size-of")).to_contain_text("102 KB clipping limit")
    expect(page.locator("#checks .group").first).to_be_visible()
    expect(page.locator("#checks")).not_to_contain_text("Running checks")
    # the file provider is the default: sending is allowed and says where it goes
    expect(page.locator("#send-button")).to_be_enabled()
    expect(page.locator("#send-hint")).to_contain_text("outbox")
    expect(page.locator("#status")).to_have_class(re.compile(r"\blive\b"))
    # the page's Content-Security-Policy blocked nothing it needs (script, styles, pictures)
    assert not [m for m in console if "Content Security Policy" in m], console
    context.close()


@pytest.mark.browser
@needs_chromium
def test_phone_view_has_no_sideways_scroll(page):
    page.click("#view-phone")
    page.wait_for_function(_active_frame_js("f.clientWidth === 375"))
    page.wait_for_timeout(200)  # let the media queries apply
    width, scroll_width, body_width = page.evaluate(_active_frame_js(
        "[f.clientWidth, d.documentElement.scrollWidth, d.body.scrollWidth]"))
    assert width == 375
    assert scroll_width <= 375 and body_width <= 375, (scroll_width, body_width)
    page.click("#view-desktop")
    page.wait_for_function(_active_frame_js("f.clientWidth > 700"))


@pytest.mark.browser
@needs_chromium
def test_text_view_shows_the_text_part(page, server):
    from playwright.sync_api import expect

    page.click("#view-text")
    text = page.locator("#text-part")
    expect(text).to_be_visible()
    expect(page.locator("iframe.email-frame.active")).to_be_hidden()
    expected = server.preview.payload()["email"]["text"]
    assert "Intercultural Communication" in expected
    assert text.inner_text().strip() == expected.strip()
    assert "<" not in text.inner_text().split("http")[0]  # text, not markup


@pytest.mark.browser
@needs_chromium
def test_editing_the_issue_updates_the_page_in_place(page, project):
    from playwright.sync_api import expect

    page.evaluate("window.__noReload = 'still here'")
    page.click("#view-phone")
    issue = project / "issues" / "2011-05.yaml"
    started = time.monotonic()
    _edit(issue, "Talking Mentoring", "Mentoring Matters")
    expect(page.locator("#inbox-subject")).to_have_text(
        "Cities of Migration – May 2011: Calgary: Mentoring Matters", timeout=UPDATE_TIMEOUT_MS)
    page.wait_for_function(_active_frame_js("d.body.innerText.includes('Mentoring Matters')"),
                           timeout=UPDATE_TIMEOUT_MS)
    assert time.monotonic() - started < UPDATE_TIMEOUT_MS / 1000 + 0.5
    assert page.evaluate("window.__noReload") == "still here"  # no navigation happened
    expect(page.locator("#view-phone")).to_have_attribute("aria-pressed", "true")
    assert page.evaluate(_active_frame_js("f.clientWidth")) == 375
    # the plain-text view follows too
    page.click("#view-text")
    expect(page.locator("#text-part")).to_contain_text("Mentoring Matters")


@pytest.mark.browser
@needs_chromium
def test_markup_in_the_subject_is_shown_as_text(page, project):
    from playwright.sync_api import expect

    evil = "Q&A: <img src=x onerror=window.__pwned=1> <Newcomers>"
    _edit(project / "issues" / "2011-05.yaml", f'subject: "{SUBJECT}"', f'subject: "{evil}"')
    expect(page.locator("#inbox-subject")).to_have_text(evil, timeout=UPDATE_TIMEOUT_MS)
    assert page.locator("#inbox-subject img").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert page.title() == f"Preview · {evil}"


@pytest.mark.browser
@needs_chromium
def test_template_edit_updates_the_page(page, project):
    """A project override of a default template, saved while the preview runs, is used."""
    from newsletter.compose.templates import DEFAULT_TEMPLATES

    page.evaluate("window.__noReload = 'still here'")
    for name in ("email.mjml.j2", "email.txt.j2"):
        default = DEFAULT_TEMPLATES.joinpath(name).read_text(encoding="utf-8")
        assert "Upcoming Webinars" in default
        (project / "templates" / name).write_text(
            default.replace("Upcoming Webinars", "Coming Webinars"), encoding="utf-8")
    page.wait_for_function(_active_frame_js("d.body.innerText.includes('Coming Webinars')"),
                           timeout=UPDATE_TIMEOUT_MS)
    assert page.evaluate("window.__noReload") == "still here"


@pytest.mark.browser
@needs_chromium
def test_template_error_shows_file_and_line_and_recovers(page, project):
    from playwright.sync_api import expect

    from newsletter.compose.templates import DEFAULT_TEMPLATES

    template = project / "templates" / "email.mjml.j2"  # an override of the default
    good = DEFAULT_TEMPLATES.joinpath("email.mjml.j2").read_text(encoding="utf-8")
    first = good.index("{%")
    line = good.count("\n", 0, first) + 1
    template.write_text(good[:first] + "{% bogus %}" + good[first:], encoding="utf-8")
    error = page.locator("#error")
    expect(error).to_contain_text(f"templates/email.mjml.j2:{line}", timeout=UPDATE_TIMEOUT_MS)
    expect(error).to_contain_text("bogus")
    template.write_text(good, encoding="utf-8")
    expect(error).to_be_hidden(timeout=UPDATE_TIMEOUT_MS)


@pytest.mark.browser
@needs_chromium
def test_broken_yaml_shows_the_error_and_recovers(page, project):
    from playwright.sync_api import expect

    page.evaluate("window.__noReload = 'still here'")
    issue = project / "issues" / "2011-05.yaml"
    good = issue.read_text(encoding="utf-8")
    _edit(issue, 'subject: "Cities', 'subject: "Cities: "x', rename=True)  # line 3
    error = page.locator("#error")
    expect(error).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
    expect(error).to_contain_text("issues/2011-05.yaml:3")
    # in plain words, with the fix
    expect(error).to_contain_text("put the whole value inside the quotes")
    # the last good version stays visible, marked as stale; sending is off meanwhile
    expect(page.locator("#stage")).to_have_class("stage stale")
    expect(page.locator("#inbox-subject")).to_have_text(SUBJECT)
    expect(page.locator("#send-button")).to_be_disabled()

    issue.write_text(good.replace("Talking Mentoring", "Fixed Again"), encoding="utf-8")
    expect(error).to_be_hidden(timeout=UPDATE_TIMEOUT_MS)
    expect(page.locator("#inbox-subject")).to_contain_text("Fixed Again")
    expect(page.locator("#stage")).not_to_have_class("stage stale")
    expect(page.locator("#send-button")).to_be_enabled()
    assert page.evaluate("window.__noReload") == "still here"


@pytest.mark.browser
@needs_chromium
def test_settings_error_is_shown_and_recovers(page, project):
    from playwright.sync_api import expect

    config = project / "newsletter.toml"
    good = config.read_text(encoding="utf-8")
    config.write_text(good.replace("[sender]", "[sender\n"), encoding="utf-8")
    expect(page.locator("#error")).to_contain_text("newsletter.toml", timeout=UPDATE_TIMEOUT_MS)
    expect(page.locator("#error-title")).to_have_text("The settings have a problem")
    config.write_text(good.replace('from_name = "Cities of Migration"',
                                   'from_name = "Maytree Editors"'), encoding="utf-8")
    expect(page.locator("#error")).to_be_hidden(timeout=UPDATE_TIMEOUT_MS)
    expect(page.locator("#inbox-sender")).to_have_text("Maytree Editors")


# -- send test ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
def test_send_test_button_delivers_to_smtp_and_needs_the_token(browser, project, monkeypatch):
    from playwright.sync_api import expect

    with SmtpPeer() as peer:
        monkeypatch.setenv("NEWSLETTER_PROVIDER", "smtp")
        monkeypatch.setenv("SMTP_URL", peer.url())
        srv = _start(project)
        context, page = _open(browser, srv)
        try:
            expect(page.locator("#send-hint")).to_have_text(
                f"Sends through the SMTP server 127.0.0.1:{peer.port}.")
            page.click("#send-button")
            result = page.locator("#send-result")
            expect(result).to_contain_text("Test sent to", timeout=10_000)
            expect(result).to_have_class("result ok")
            got = {rcpt for m in peer.messages for rcpt in m.rcpt_tos}
            assert got == REVIEWERS
            for message in peer.messages:
                assert b"Subject: [TEST] " in message.data

            # without the token, or with a wrong one: 403, and nothing more is sent
            url = srv.url + "send-test"
            body = json.dumps({"render_id": srv.preview.payload()["render_id"]})
            headers = {"Content-Type": "application/json"}
            assert page.request.post(url, data=body, headers=headers).status == 403
            wrong = {**headers, "X-Preview-Token": "not-the-token"}
            assert page.request.post(url, data=body, headers=wrong).status == 403
            # GET is not a way to send
            assert page.request.get(url).status == 404
            assert len(peer.messages) == len(REVIEWERS)
        finally:
            context.close()
            srv.close()


@pytest.mark.browser
@needs_chromium
def test_send_test_to_the_file_outbox_says_where_it_went(page, project):
    from playwright.sync_api import expect

    page.click("#send-button")
    result = page.locator("#send-result")
    expect(result).to_contain_text("Test sent to", timeout=10_000)
    expect(result).to_contain_text("outbox")
    written = sorted((project / "outbox").rglob("*.eml"))
    assert len(written) == len(REVIEWERS)
    assert all(b"Subject: [TEST] " in p.read_bytes() for p in written)


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
def test_send_button_is_disabled_without_a_provider(browser, project, monkeypatch):
    from playwright.sync_api import expect

    monkeypatch.setenv("NEWSLETTER_PROVIDER", "smtp")  # but no SMTP_URL
    srv = _start(project)
    context, page = _open(browser, srv)
    try:
        expect(page.locator("#send-button")).to_be_disabled()
        expect(page.locator("#send-hint")).to_contain_text("SMTP_URL: not set")
    finally:
        context.close()
        srv.close()


# -- without a browser ----------------------------------------------------------------------


def _request(url: str, *, method: str = "GET", headers: dict | None = None,
             data: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_server_binds_loopback_and_refuses_other_host_names(server):
    assert server.server_address[0] == "127.0.0.1"
    status, body = _request(server.url)
    assert status == 200 and b'name="preview-token"' in body
    # a DNS-rebinding page would arrive with its own host name: it never gets the token
    status, body = _request(server.url, headers={"Host": f"evil.example:{server.port}"})
    assert status == 421 and b"preview-token" not in body


def test_send_test_refuses_missing_token_and_a_stale_render(server):
    url = server.url + "send-test"
    render_id = server.preview.payload()["render_id"]
    body = json.dumps({"render_id": render_id}).encode()
    assert _request(url, method="POST", data=body)[0] == 403
    # with the token but for an older render than the one being shown: refused
    headers = {"X-Preview-Token": server.token, "Content-Type": "application/json"}
    stale = json.dumps({"render_id": render_id - 1}).encode()
    status, answer = _request(url, method="POST", data=stale, headers=headers)
    assert status == 409 and b"changed" in answer


def test_send_test_with_a_bad_content_length_is_a_400(server, capfd):
    import http.client

    for value in ("abc", "-5"):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.putrequest("POST", "/send-test", skip_accept_encoding=True)
        conn.putheader("X-Preview-Token", server.token)
        conn.putheader("Content-Length", value)
        conn.endheaders()
        response = conn.getresponse()  # a negative length used to block the thread for good
        assert response.status == 400, value
        assert json.loads(response.read())["ok"] is False
        conn.close()
    assert "Traceback" not in capfd.readouterr().err


def test_events_stream_starts_with_the_current_state(server):
    req = urllib.request.Request(server.url + "events")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=5) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        lines = []
        while not any(line.startswith(b"data: ") for line in lines):
            lines.append(stream.readline())
    data = json.loads(next(x for x in lines if x.startswith(b"data: "))[6:])
    assert data["email"]["subject"] == SUBJECT
    assert data["error"] is None


def test_send_status_explains_what_is_missing(settings, monkeypatch):
    assert send_status(settings)["enabled"] is True  # file provider: the local outbox
    assert "outbox" in send_status(settings)["detail"]
    from dataclasses import replace

    broken = replace(settings, env={**settings.env, "NEWSLETTER_PROVIDER": "pigeon"})
    status = send_status(broken)
    assert status["enabled"] is False and "pigeon" in status["reason"]
    smtp = replace(settings, env={**settings.env, "NEWSLETTER_PROVIDER": "smtp",
                                  "SMTP_URL": "smtp://ana:s3cret@mail.example.org:587"})
    status = send_status(smtp)
    assert status["enabled"] is True
    assert status["detail"] == "through the SMTP server mail.example.org:587"  # no password
    nobody = replace(settings, reviewers=())
    assert "reviewers" in send_status(nobody)["reason"]


@pytest.mark.slow
@pytest.mark.parametrize("polling", [False, True], ids=["file-events", "polling"])
def test_live_reload_without_a_browser(project, polling):
    """The watcher re-renders on a save, with inotify and with polling (its fallback)."""
    preview = Preview(project / "issues" / "2011-05.yaml", project / "newsletter.toml",
                      step_ms=30, force_polling=polling)
    preview.start()
    try:
        seq = preview.payload()["seq"]
        if polling:  # polling compares against a first scan it makes in its own time
            time.sleep(1.0)
        # with file events, start() returns once the watches are in place: no sleep needed
        _edit(project / "issues" / "2011-05.yaml", "Talking Mentoring", "Polled Change")
        deadline = time.monotonic() + 3
        subject = ""
        while time.monotonic() < deadline and "Polled Change" not in subject:
            seq = preview.wait(seq, timeout=0.5)
            subject = (preview.payload()["email"] or {}).get("subject", "")
        assert subject.endswith("Calgary: Polled Change")
    finally:
        preview.close()


def test_missing_issue_file_is_an_issue_error(project):
    from newsletter.errors import IssueError

    with pytest.raises(IssueError, match="file not found"):
        Preview(project / "issues" / "nope.yaml", project / "newsletter.toml")


# -- the documentation picture ----------------------------------------------------------------


@pytest.mark.browser
@needs_chromium
@pytest.mark.skipif(not os.environ.get("NEWSLETTER_SCREENSHOTS"),
                    reason="set NEWSLETTER_SCREENSHOTS=1 to rewrite docs/images/preview*.png")
def test_screenshot(browser, server, project, tmp_path):
    from playwright.sync_api import expect

    out = ROOT / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    issue = project / "issues" / "2011-05.yaml"
    good = issue.read_text(encoding="utf-8")
    for name, view, broken in (("preview.png", "desktop", False),
                               ("preview-phone.png", "phone", False),
                               ("preview-error.png", "desktop", True)):
        context, page = _open(browser, server, width=1440, height=1000)
        try:
            page.click(f"#view-{view}")
            page.wait_for_function("!document.querySelector('#checks .pending')")
            if broken:  # a typo in a field name, as an editor might save it
                issue.write_text(good.replace("    cta:", "    cat:"), encoding="utf-8")
                expect(page.locator("#error")).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
            page.wait_for_timeout(400)
            shot = tmp_path / name
            page.screenshot(path=str(shot))
            shutil.copy(shot, out / name)
        finally:
            issue.write_text(good, encoding="utf-8")
            context.close()
        assert (out / name).stat().st_size > 10_000


# -- the command --------------------------------------------------------------------------------


def _spawn_cli(project: Path, *args: str):
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "preview", "issues/2011-05.yaml", "--no-open", *args],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.slow
def test_cli_prints_its_url_and_stops_cleanly_on_ctrl_c(project):
    import signal

    proc = _spawn_cli(project, "--port", "0")
    try:
        line = proc.stdout.readline()  # printed once the first render is done
        assert line.startswith("Preview of issues/2011-05.yaml on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].split()[0]
        assert _request(url)[0] == 200
        # an open event stream must not keep the server from stopping
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        stream = opener.open(url + "events", timeout=5)
        stream.readline()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
        stream.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, err
    assert "Stopped." in out
    assert "Traceback" not in err


def test_cli_port_in_use_is_one_clear_line(project):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _spawn_cli(project, "--port", str(port))
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.strip() == (f"port {port} is already in use: choose another with --port "
                           "(or --port 0 for any free one)")


def test_cli_missing_issue_and_help(project):
    from click.testing import CliRunner

    from newsletter.cli import main

    result = CliRunner().invoke(main, ["preview", "issues/nope.yaml", "--no-open"])
    assert result.exit_code == 1
    assert "issues/nope.yaml: file not found" in result.output
    result = CliRunner().invoke(main, ["preview", "--help"])
    assert result.exit_code == 0
    assert "newsletter preview issues/2011-05.yaml --port 8080 --no-open" in result.output


# -- dark mode and local pictures ------------------------------------------------------------------


def _background(page, selector: str = "d.body") -> str:
    return page.evaluate(_active_frame_js(
        f"getComputedStyle(d.querySelector('.card') || {selector}).backgroundColor"))


@pytest.mark.browser
@needs_chromium
def test_dark_view_applies_the_emails_dark_mode_styles(page, server):
    from playwright.sync_api import expect

    light_card = _background(page)
    assert light_card == "rgb(255, 255, 255)"
    page.click("#view-dark")
    expect(page.locator("#view-dark")).to_have_attribute("aria-pressed", "true")
    page.wait_for_function(_active_frame_js(
        "getComputedStyle(d.querySelector('.card')).backgroundColor !== 'rgb(255, 255, 255)'"))
    # the template's (prefers-color-scheme: dark) rules: dark cards, light text
    assert _background(page) == "rgb(29, 35, 39)"
    text = page.evaluate(_active_frame_js(
        "getComputedStyle([...d.querySelectorAll('.t p')].find(p => !p.className)).color"))
    assert text == "rgb(232, 237, 240)"
    expect(page.locator("#dark-hint")).to_contain_text("Apple Mail")
    # the same email at desktop width: only the colours differ
    assert page.evaluate(_active_frame_js("f.clientWidth")) > 700
    page.click("#view-desktop")
    page.wait_for_function(_active_frame_js(
        "getComputedStyle(d.querySelector('.card')).backgroundColor === 'rgb(255, 255, 255)'"))
    expect(page.locator("#dark-hint")).to_be_hidden()


def test_dark_html_without_dark_styles_inverts_colours() -> None:
    from newsletter.preview.server import dark_html

    own, hint = dark_html("<html><head><style>@media (prefers-color-scheme: dark) "
                          "{ body { background: #000 } }</style></head><body></body></html>")
    assert "@media (min-width: 0px)" in own and "invert" not in own and "Apple Mail" in hint
    forced, hint = dark_html("<html><head></head><body style='background:#fff'></body></html>")
    assert "invert(1)" in forced and "invert" in hint


@pytest.mark.browser
@needs_chromium
def test_local_picture_is_served_from_disk(browser, project):
    from PIL import Image

    Image.new("RGB", (1600, 900), (200, 40, 40)).save(project / "issues" / "photo.jpg")
    issue = project / "issues" / "2011-05.yaml"
    text = issue.read_text(encoding="utf-8")
    start = text.index("      src: https://citiesofmigration.ca/wp-content/uploads")
    end = text.index("\n", start)
    issue.write_text(text[:start] + "      src: photo.jpg" + text[end:], encoding="utf-8")
    srv = _start(project)
    try:
        email = srv.preview.payload()["email"]
        [name] = re.findall(r'src="/images/(photo-[0-9a-f]{16}\.jpg)"', email["html"])
        with urllib.request.urlopen(f"{srv.url}images/{name}") as response:
            assert response.headers["Content-Type"] == "image/jpeg"
            assert Image.open(response).size == (1072, 603)  # twice the 536 px it is shown at
        context, page = _open(browser, srv)
        page.wait_for_function(_active_frame_js(
            "[...d.images].some(i => i.src.includes('/images/photo-') && i.naturalWidth === 1072)"))
        context.close()
    finally:
        srv.close()


def test_the_page_names_a_shortened_summary(project):
    """The checks beside the email say which teaser the email cuts, and by how much."""
    long = ("It’s the question asked in cities around the world. It may be one thing to "
            "attract skilled immigrants, but how can cities ensure they stay, build careers "
            "and raise families? Copenhagen asked its newcomers and employers.")
    _edit(project / "issues" / "2011-05.yaml",
          'summary: "It’s the question asked in cities around the world. It may be one thing '
          'to attract skilled immigrants, but how can cities ensure they stay…"',
          f'summary: "{long}"')
    preview = Preview(project / "issues" / "2011-05.yaml", project / "newsletter.toml")
    try:
        preview.rebuild()  # renders, then runs the offline checks (not started: synchronous)
        notes = [f["message"] for f in preview.payload()["checks"]["findings"]
                 if f["level"] == "note" and "shortened" in f["message"]]
        assert len(notes) == 1
        assert notes[0].startswith('more[3] "Copenhagen: How Do We Retain Skilled Immigrants?"'
                                   ": the summary is shortened to ")
    finally:
        preview.close()

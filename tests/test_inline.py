"""Inlining does no harm (issue 2, item 10): the premailer configuration
in newsletter.compose.inline."""

from __future__ import annotations

import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from newsletter.compose.inline import inline_css
from newsletter.compose.render import UNSUBSCRIBE_PLACEHOLDER, render_issue
from tests.support.render import Page, make_issue

STYLE = re.compile(r"<style\b[^>]*>(.*?)</style>", re.S | re.I)


@pytest.fixture
def pair(settings):
    """(un-inlined, inlined) HTML of an issue that uses every part of the template."""
    issue = make_issue(
        preheader="Preview text",
        intro="An *intro* with a [link](https://example.org/intro).",
        featured=[{"title": "Ελλάδα & co", "url": "https://example.org/s", "cta": "Read",
                   "image": {"src": "https://example.org/a.jpg", "alt": "A photo", "width": 300},
                   "body": "## Head\n\n- a\n- b\n\n> quote\n\nText [x](https://example.org/x)"}],
        more=[{"title": "More", "url": "https://example.org/m", "summary": "Teaser"}],
        events=[{"title": "Event", "date": "2011-06-14", "location": "Online"}],
    )
    raw = render_issue(issue, settings, inline=False).html
    return raw, inline_css(raw)


def _media_blocks(css: str) -> list[str]:
    """Each `@media ... { ... }` block of a style sheet, braces balanced."""
    blocks, i = [], css.find("@media")
    while i != -1:
        depth, j = 0, css.index("{", i)
        while True:
            depth += {"{": 1, "}": -1}.get(css[j], 0)
            j += 1
            if depth == 0:
                break
        blocks.append(css[i:j])
        i = css.find("@media", j)
    return blocks


def test_doctype_is_kept_exactly(pair):
    raw, inlined = pair
    assert raw.startswith("<!doctype html>")
    assert inlined.startswith("<!doctype html><html")
    legacy = '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" ' \
             '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">'
    out = inline_css(f"{legacy}<html><head><style>p {{ color: red }}</style></head>"
                     "<body><p>x</p></body></html>")
    assert out.startswith(legacy + "<html>")
    assert out.count("<!DOCTYPE") == 1


def test_every_media_rule_is_kept_with_its_important(pair):
    raw, inlined = pair
    raw_css = "\n".join(STYLE.findall(raw))
    out_css = "\n".join(STYLE.findall(inlined))
    blocks = _media_blocks(raw_css)
    # MJML's column rules, the phone rules and the dark-mode rules
    assert any("prefers-color-scheme: dark" in b for b in blocks)
    assert any("max-width: 479px" in b for b in blocks)
    assert any("min-width:480px" in b for b in blocks)
    for block in blocks:
        assert block in out_css, block[:80]
    assert out_css.count("!important") == raw_css.count("!important") > 20


def test_image_and_layout_attributes_are_unchanged(pair):
    raw, inlined = pair

    def images(html):
        return [(i.get("src"), i.get("width"), i.get("height")) for i in Page(html).all("img")]

    assert images(raw) == images(inlined)
    assert ("https://example.org/a.jpg", "300", "auto") in images(inlined)
    for attribute in ("width", "height", "align", "valign", "bgcolor"):
        pattern = re.compile(rf"\s{attribute}=")
        assert len(pattern.findall(inlined)) == len(pattern.findall(raw)), attribute


def test_rules_are_inlined(pair):
    raw, inlined = pair
    # a rule of the template's first <mj-style> reaches the elements it selects
    assert re.search(r'<blockquote style="[^"]*border-left:4px solid', inlined)
    assert not re.search(r'<blockquote style=', raw)
    # and the style blocks are still there for clients that use them
    assert len(STYLE.findall(inlined)) == len(STYLE.findall(raw))


def test_placeholders_and_text_survive(pair):
    raw, inlined = pair
    assert f'href="{UNSUBSCRIBE_PLACEHOLDER}"' in inlined
    assert "Ελλάδα &amp; co" in inlined  # characters, not numeric entities
    assert Page(raw).text == Page(inlined).text
    assert Page(raw).links() == Page(inlined).links()


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        type(self).hits.append(self.path)
        body = b"p { color: red; }"
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def css_server():
    _Recorder.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_nothing_is_fetched(css_server):
    base, hits = css_server
    html = (
        "<!doctype html><html><head>"
        f'<link rel="stylesheet" href="{base}/link.css">'
        f"<style>@import url({base}/import.css); p {{ color: blue; }}</style>"
        "</head><body>"
        f'<p>x</p><img src="{base}/img.png" alt="i" width="10">'
        "</body></html>"
    )
    out = inline_css(html)
    assert hits == []
    assert f'href="{base}/link.css"' in out  # left alone, not fetched nor inlined
    assert '<p style="color:blue">' in out


def test_no_warnings_are_printed(pair, capsys, caplog, recwarn):
    raw, _ = pair
    assert "mso-" in raw  # properties cssutils does not know and would warn about
    caplog.set_level(logging.DEBUG)
    inline_css(raw)
    inline_css(raw.replace("color:", "colr:"))  # an invalid property, too
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert len(recwarn) == 0


def test_inlining_changes_no_other_library(pair):
    """Rendering leaves the rest of the process as it found it: nothing of ours in
    sys.modules under another library's name, premailer's functions its own."""
    import sys

    import premailer.merge_style
    import premailer.premailer

    before = (premailer.merge_style.csstext_to_pairs, premailer.premailer.csstext_to_pairs,
              premailer.premailer.merge_styles)
    inline_css(pair[0])
    after = (premailer.merge_style.csstext_to_pairs, premailer.premailer.csstext_to_pairs,
             premailer.premailer.merge_styles)
    assert after == before
    assert all(getattr(f, "__module__", "").startswith("premailer") for f in after)
    foreign = [name for name, module in list(sys.modules.items())
               if module is not None and not name.startswith("newsletter")
               and type(module).__module__.startswith("newsletter")]
    assert foreign == []


def test_media_only_style_blocks_are_left_verbatim(pair):
    raw, inlined = pair
    assert "data-premailer" not in inlined
    assert STYLE.findall(raw) == STYLE.findall(inlined)


def test_own_styles_merged_as_premailer_would_without_validation(pair, seed_issue, settings):
    """The local workaround for premailer's merge_styles parsing each element's own `style`
    with validation on (disable_validation does not reach it): same output as premailer's whole
    transform, on the fast path."""
    import warnings

    from newsletter.compose import inline
    from newsletter.compose.issue import load_issue

    seed = render_issue(load_issue(seed_issue), settings, inline=False).html
    for raw in (pair[0], seed):
        body = inline._skip_media_only_styles(inline._DOCTYPE.sub("", raw, count=1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast = inline._transform(body)
            whole = inline._premailer_class()(body, **inline._OPTIONS).transform(
                pretty_print=False)
        assert fast is not None
        assert fast == whole
        assert 'style="' in fast and "{{unsubscribe_url}}" in fast


def test_own_style_wins_over_rules_and_unmatched_styles_stay_verbatim():
    html = ('<html><head><style>a { color: blue; font-weight: normal } p { margin: 0 }</style>'
            '</head><body><a href="https://example.org/" style="font-weight: bold;color :red">'
            'x</a><span style="COLOR:Red ;">y</span></body></html>')
    out = inline_css(html)
    assert 'style="color:red; font-weight:bold"' in out
    assert '<span style="COLOR:Red ;">' in out

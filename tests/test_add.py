"""`newsletter add`: a story from a local web page (http.server on 127.0.0.1 in a thread)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.compose.adding import add_story
from newsletter.compose.fetch import FetchError, fetch_page
from newsletter.compose.issue import load_issue

STORY = """<!doctype html><html><head><meta charset="utf-8">
<title>Maximum Cities | Cities of Migration</title>
<meta property="og:title" content="Maximum Cities">
<meta property="og:description" content="This month, we are excited to put   the spotlight on
 Maximum City: Bombay Lost and Found.">
<meta property="og:image" content="/uploads/maximum.jpg">
<meta property="og:image:alt" content="A crowded street in Mumbai at dusk">
<meta name="description" content="not this one">
</head><body><p>Hello</p></body></html>"""

TWITTER = """<html><head><title>Fallback title</title>
<meta name="twitter:title" content="Zürich: Ελλάδα &amp; 北京">
<meta name="twitter:description" content="From the card">
</head><body></body></html>"""

PLAIN = """<html><head><title>
  Essen: Transatlantic Trends </title>
<meta name="description" content="The annual meeting of the DMIIG.">
</head></html>"""

ISSUE = """\
# June issue: draft
subject: "Cities of Migration – June 2011"   # keep it short
date: 2011-06-15

featured:
  - title: "Calgary: Talking Mentoring"
    body: |
      Text.

more:
  - title: "Christchurch"   # a comment that must survive
    url: 'https://citiesofmigration.ca/christchurch'
    summary: "Teaser"

# "Upcoming Webinars" shows "No events." for this issue.
events: []
"""


class _Pages(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        path = self.path
        if path.startswith("/redirect/"):
            n = int(path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/redirect/{n + 1}" if n < 10 else "/story")
            self.end_headers()
            return
        if path == "/moved":
            self.send_response(301)
            self.send_header("Location", "/story")
            self.end_headers()
            return
        if path == "/slow":
            time.sleep(3)
        pages = {"/story": STORY, "/twitter": TWITTER, "/plain": PLAIN, "/slow": STORY}
        if path == "/image.png":
            body, ctype = b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png"
        elif path == "/big":
            body, ctype = b"<html><title>x</title>" + b" " * (3 * 1024 * 1024), "text/html"
        elif path in pages:
            body, ctype = pages[path].encode("utf-8"), "text/html; charset=utf-8"
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def issue(project: Path) -> Path:
    path = project / "issues" / "2011-06.yaml"
    path.write_text(ISSUE, encoding="utf-8")
    return path


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_reads_open_graph_first(site: str) -> None:
    page = fetch_page(f"{site}/story")
    assert page.title == "Maximum Cities"
    assert page.description == ("This month, we are excited to put the spotlight on Maximum "
                                "City: Bombay Lost and Found.")
    assert page.image == f"{site}/uploads/maximum.jpg"  # made absolute
    assert page.image_alt == "A crowded street in Mumbai at dusk"


def test_falls_back_to_twitter_card_then_meta_and_title(site: str) -> None:
    card = fetch_page(f"{site}/twitter")
    assert (card.title, card.description) == ("Zürich: Ελλάδα & 北京", "From the card")
    plain = fetch_page(f"{site}/plain")
    assert (plain.title, plain.description) == ("Essen: Transatlantic Trends",
                                                "The annual meeting of the DMIIG.")
    assert plain.image is None


def test_add_to_more_keeps_comments_and_layout(issue: Path, site: str) -> None:
    result = run("add", str(issue), f"{site}/moved")
    assert result.exit_code == 0, result.output
    assert "Added to More Stories (more[1])" in result.output
    assert "title: Maximum Cities" in result.output
    text = issue.read_text(encoding="utf-8")
    # Everything that was there is still there, byte for byte, and the story sits at the end
    # of `more`, before the comment that introduces the next section.
    head, tail = ISSUE.split('\n# "Upcoming Webinars"')
    assert text.startswith(head)
    assert text.endswith('\n# "Upcoming Webinars"' + tail)
    added = text[len(head):-len('\n# "Upcoming Webinars"' + tail)]
    assert added == (f'  - title: "Maximum Cities"\n    url: {site}/story\n'
                     '    summary: "This month, we are excited to put the spotlight on Maximum '
                     'City: Bombay Lost and Found."\n')
    loaded = load_issue(issue)
    assert [s.title for s in loaded.more] == ["Christchurch", "Maximum Cities"]


def test_add_featured_with_picture_says_to_check_it(issue: Path, site: str) -> None:
    result = run("add", str(issue), f"{site}/story", "--featured")
    assert result.exit_code == 0, result.output
    assert "check the picture and its alt text" in result.output
    story = load_issue(issue).featured[-1]
    assert story.title == "Maximum Cities"
    assert story.image is not None and story.image.src == f"{site}/uploads/maximum.jpg"
    assert story.image.alt == "A crowded street in Mumbai at dusk"
    assert story.body.startswith("This month, we are excited")
    assert "# keep it short" in issue.read_text(encoding="utf-8")


def test_more_created_when_absent(project: Path, site: str) -> None:
    path = project / "issues" / "2011-07.yaml"
    path.write_text("subject: x\ndate: 2011-07-01\nfeatured:\n- title: a\n  body: b\n"
                    "events: []\n", encoding="utf-8")
    assert run("add", str(path), f"{site}/plain").exit_code == 0
    assert path.read_text(encoding="utf-8") == (
        "subject: x\ndate: 2011-07-01\nfeatured:\n- title: a\n  body: b\nmore:\n"
        f'- title: "Essen: Transatlantic Trends"\n  url: {site}/plain\n'
        '  summary: "The annual meeting of the DMIIG."\nevents: []\n')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("target, message", [
    ("{site}/missing", "the page answered 404 Not Found"),
    ("{site}/image.png", "not a web page but image/png"),
    ("{site}/big", "larger than 2 MB"),
    ("{site}/redirect/0", "more than 5 redirects"),
    ("http://127.0.0.1:{port}/", "connection refused"),
    ("ftp://127.0.0.1/story", "only http:// and https:// pages"),
    ("file:///etc/passwd", "only http:// and https:// pages"),
])
def test_failures_leave_the_file_unchanged(issue: Path, site: str, target: str,
                                           message: str) -> None:
    before = issue.read_bytes()
    result = run("add", str(issue), target.format(site=site, port=_free_port()))
    assert result.exit_code == 1
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert issue.read_bytes() == before


def test_timeout_leaves_the_file_unchanged(issue: Path, site: str) -> None:
    before = issue.read_bytes()
    started = time.monotonic()
    with pytest.raises(FetchError, match="time limit"):
        add_story(issue, f"{site}/slow", timeout=0.5)
    assert time.monotonic() - started < 2.5
    assert issue.read_bytes() == before


def test_bad_yaml_is_reported_before_fetching(project: Path) -> None:
    path = project / "issues" / "2011-08.yaml"
    path.write_text("subject: x\nfeatured:\n\t- title: a\n", encoding="utf-8")
    result = run("add", str(path), "http://127.0.0.1:9/never")
    assert result.exit_code == 1
    assert result.output.strip() == f"{path}:3: a tab character in line 3: indent with " \
                                     "spaces, not tabs"

"""`newsletter archive`: the static site (index by year, issue pages without personal parts,
Atom feed), written all-or-nothing; checked in Chromium at phone width."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.compose.render import UNSUBSCRIBE_PLACEHOLDER

ATOM = "{http://www.w3.org/2005/Atom}"

JUNE = """\
subject: "Cities of Migration – June 2011: Zürich & Montréal welcome <newcomers>"
preheader: "Two cities, one idea: belonging."
date: 2011-06-15
featured:
  - title: "Zürich: A City of Belonging"
    url: https://citiesofmigration.ca/ezine_stories/zurich/
    body: |
      A short story about **welcoming** newcomers, with a [link](https://example.org/zurich).
more:
  - title: "Montréal: Q&A <Newcomers>"
    url: https://citiesofmigration.ca/ezine_stories/montreal/
    summary: "A conversation."
events: []
"""

DECEMBER_2010 = """\
subject: "Cities of Migration – December 2010"
date: 2010-12-10
featured:
  - title: "A year of good ideas"
    body: "Looking back at 2010."
"""


@pytest.fixture
def issues(project: Path, seed_issue: Path) -> Path:
    (project / "issues" / "2011-06.yaml").write_text(JUNE, encoding="utf-8")
    return project / "issues"


def run(*args: str):
    return CliRunner().invoke(main, ["archive", *args], catch_exceptions=False)


def test_builds_index_newest_first_issue_pages_and_feed(project: Path, issues: Path) -> None:
    result = run()
    assert result.exit_code == 0, result.output
    site = project / "site"
    assert sorted(p.name for p in site.iterdir() if not p.name.startswith(".")) == \
        ["2011-05.html", "2011-06.html", "feed.xml", "index.html"]

    index = (site / "index.html").read_text(encoding="utf-8")
    assert '<html lang="en">' in index and "<title>" in index and 'name="viewport"' in index
    june = index.index('href="2011-06.html"')
    may = index.index('href="2011-05.html"')
    assert june < may  # newest first
    assert index.count("<h2") == 1 and ">2011</h2>" in index
    assert "Zürich &amp; Montréal welcome &lt;newcomers&gt;" in index  # text, never markup
    assert "Two cities, one idea: belonging." in index  # preheader
    assert '<time datetime="2011-06-15">15 June 2011</time>' in index


def test_issue_pages_have_no_personal_parts(project: Path, issues: Path, settings) -> None:
    assert run().exit_code == 0
    for slug in ("2011-05", "2011-06"):
        page = (project / "site" / f"{slug}.html").read_text(encoding="utf-8")
        assert UNSUBSCRIBE_PLACEHOLDER not in page
        assert "unsubscribe" not in page.lower()
        assert settings.view_online_for(slug) not in page  # no link to itself
        assert f'href="{settings.subscribe_url}"' in page
        assert 'href="index.html"' in page
        assert re.search(r'<html lang="en"', page) and 'name="viewport"' in page
        assert re.search(r"<title>[^<]+</title>", page)
    may = (project / "site" / "2011-05.html").read_text(encoding="utf-8")
    assert "Calgary: Talking Mentoring" in may  # the same render as the email


def test_feed_is_atom_with_entries(project: Path, issues: Path, settings) -> None:
    assert run().exit_code == 0
    root = ET.parse(project / "site" / "feed.xml").getroot()
    assert root.tag == f"{ATOM}feed"
    for tag in ("id", "title", "updated", "author"):
        assert root.find(f"{ATOM}{tag}") is not None, tag
    assert root.find(f"{ATOM}updated").text == "2011-06-15T00:00:00Z"
    entries = root.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}id").text.rsplit("/", 1)[-1] for e in entries] == \
        ["2011-06.html", "2011-05.html"]
    for entry in entries:
        for tag in ("id", "title", "updated", "summary"):
            assert entry.find(f"{ATOM}{tag}").text, tag
        link = entry.find(f"{ATOM}link")
        assert link.get("rel") == "alternate"
        assert link.get("href").startswith(settings.archive_url)
    assert entries[0].find(f"{ATOM}title").text.endswith("welcome <newcomers>")
    self_link = [x for x in root.findall(f"{ATOM}link") if x.get("rel") == "self"]
    assert self_link and self_link[0].get("href").endswith("/feed.xml")


def test_issues_grouped_by_year(project: Path, issues: Path) -> None:
    (issues / "2010-12.yaml").write_text(DECEMBER_2010, encoding="utf-8")
    assert run("--out", "public").exit_code == 0
    index = (project / "public" / "index.html").read_text(encoding="utf-8")
    years = re.findall(r"<h2[^>]*>(\d{4})</h2>", index)
    assert years == ["2011", "2010"]
    assert index.index(">2010</h2>") < index.index('href="2010-12.html"')


def test_a_bad_issue_is_one_clear_error_and_the_old_site_stays(project: Path,
                                                                issues: Path) -> None:
    assert run().exit_code == 0
    before = {p.name: p.read_bytes() for p in (project / "site").iterdir()}
    (issues / "2011-07.yaml").write_text(
        'subject: "July"\ndate: 2011-07-01\nfeatured:\n  - title: "T"\n    body: "B"\n'
        '    sumary: "typo"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["archive"])
    assert result.exit_code == 1
    assert "2011-07.yaml" in result.output and "sumary" in result.output
    assert "Traceback" not in result.output
    after = {p.name: p.read_bytes() for p in (project / "site").iterdir()}
    assert after == before
    assert not [p for p in project.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_refuses_to_replace_a_folder_it_did_not_write(project: Path, issues: Path) -> None:
    (project / "docs").mkdir()
    (project / "docs" / "keep.txt").write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(main, ["archive", "--out", "docs"])
    assert result.exit_code == 1 and "refusing" in result.output
    assert (project / "docs" / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_rebuild_replaces_the_site(project: Path, issues: Path) -> None:
    assert run().exit_code == 0
    (issues / "2011-06.yaml").unlink()
    assert run().exit_code == 0
    assert not (project / "site" / "2011-06.html").exists()
    assert (project / "site" / "2011-05.html").exists()


# -- in a real browser ------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.slow
@pytest.mark.browser
def test_index_and_issue_page_fit_a_360px_phone(project: Path, issues: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (install Debian's chromium; CI has it)")
    from playwright.sync_api import sync_playwright

    assert run().exit_code == 0
    site = project / "site"
    blocked: list[str] = []

    def guard(route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:", "http://127.0.0.1")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 360, "height": 740})
            page.route("**/*", guard)
            for name in ("index.html", "2011-05.html", "2011-06.html"):
                page.goto((site / name).as_uri())
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 360, f"{name} scrolls sideways at 360 px ({width} px wide)"
                assert page.evaluate("document.documentElement.lang") == "en"
                assert page.title()
            page.goto((site / "index.html").as_uri())
            page.get_by_role("link", name=re.compile("June 2011")).click()
            page.wait_for_load_state()
            assert page.url.endswith("/2011-06.html")
            page.get_by_role("link", name="All issues").first.click()
            page.wait_for_load_state()
            assert page.url.endswith("/index.html")
        finally:
            browser.close()
    assert all(not u.startswith("file:") for u in blocked)


def test_archive_needs_no_network_or_database(project: Path, issues: Path) -> None:
    # Publishing the archive is a build step: it must not need the subscriber database.
    assert run().exit_code == 0
    assert not (project / "newsletter.db").exists()


def test_an_unwritable_destination_is_one_clear_error(project: Path, issues: Path) -> None:
    (project / "blocked").write_text("a file, not a folder", encoding="utf-8")
    result = CliRunner().invoke(main, ["archive", "--out", "blocked/site"])
    assert result.exit_code == 1
    assert "blocked" in result.output and "Traceback" not in result.output


def test_progress_counts_rendered_issues(project: Path, issues: Path, settings) -> None:
    from newsletter.compose.archive import build_archive

    calls: list[tuple[int, int]] = []
    pages = build_archive(settings, project / "site", progress=lambda *a: calls.append(a))
    assert len(pages) == 2
    assert calls == [(0, 2), (1, 2), (2, 2)]


def test_archive_output_when_not_a_terminal_is_one_line(project: Path, issues: Path) -> None:
    result = CliRunner().invoke(main, ["archive"])
    assert result.exit_code == 0
    assert result.stdout == "wrote site/: index.html, feed.xml and 2 issue pages\n"
    assert result.stderr == ""  # no progress in a pipe


def test_drafts_dated_after_today_are_not_published(project: Path, issues: Path) -> None:
    """`newsletter new` writes next month's skeleton; it must not reach the public archive."""
    assert CliRunner().invoke(main, ["new"]).exit_code == 0
    draft = sorted(p.stem for p in issues.glob("*.yaml"))[-1]
    result = run()
    assert result.exit_code == 0, result.output
    site = project / "site"
    assert not (site / f"{draft}.html").exists()
    assert f"{draft}.html" not in (site / "index.html").read_text(encoding="utf-8")
    assert "Headline of the featured story" not in (site / "feed.xml").read_text(encoding="utf-8")
    assert (site / "2011-06.html").exists()
    result = run("--include-future")
    assert result.exit_code == 0 and (site / f"{draft}.html").exists()

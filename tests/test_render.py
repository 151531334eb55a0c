"""render_issue: the seed issue and small issues built in the tests, HTML and plain text."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape

import pytest

from newsletter.compose.issue import load_issue
from newsletter.compose.render import (
    UNSUBSCRIBE_PLACEHOLDER,
    Rendered,
    render_issue,
    render_mjml,
    render_text,
)
from newsletter.compose.templates import DEFAULT_TEMPLATES, format_date, shorten
from newsletter.compose.tracking import track_url
from newsletter.errors import RenderError
from tests.support.render import URL_LINE, Page, make_issue

UTM = "utm_source=newsletter&utm_medium=email&utm_campaign=2011-05"


@pytest.fixture
def seed(seed_issue, settings):
    issue = load_issue(seed_issue)
    return issue, render_issue(issue, settings)


# -- the seed issue ------------------------------------------------------------------------------


def test_every_seed_story_is_in_both_parts(seed):
    issue, rendered = seed
    page = Page(rendered.html)
    titles = [s.title for s in issue.featured] + [s.title for s in issue.more]
    assert len(issue.more) >= 8  # the seed page lists nine "More Stories"
    for title in titles:
        assert title in page.text, title
        assert " ".join(title.split()) in " ".join(rendered.text.split()), title
    for section in ("More Stories – From May 2011", "Upcoming Webinars", "No events.",
                    "Looking for Past Issues?"):
        assert section in page.text
        assert section in rendered.text
    # the featured body's Markdown became structure
    assert page.all("h3") and page.all("ul") and page.all("blockquote")
    assert "Intercultural Communication" in page.text


def test_seed_html_parses_and_stays_under_gmail_clipping(seed):
    from lxml import etree
    from lxml import html as lxml_html

    _, rendered = seed
    size = len(rendered.html.encode("utf-8"))
    assert size < 102 * 1024, f"{size} bytes"
    root = lxml_html.document_fromstring(rendered.html)
    assert root.tag == "html"
    # a strict parser agrees the markup is well-formed enough to have no errors it must repair
    parser = etree.HTMLParser(recover=True)
    etree.fromstring(rendered.html, parser)
    fatal = [e for e in parser.error_log if e.level_name == "FATAL"]
    assert not fatal, fatal[:3]
    assert rendered.html.startswith("<!doctype html>")


def test_html_document_head(seed, settings):
    issue, rendered = seed
    page = Page(rendered.html)
    assert page.all("html")[0]["lang"] == settings.language == "en"
    assert unescape(page.title) == issue.subject
    metas = {m.get("name"): m.get("content") for m in page.all("meta")}
    assert metas.get("color-scheme") == "light dark"
    assert "@media (prefers-color-scheme: dark)" in rendered.html
    assert "max-width:600px" in rendered.html.replace(" ", "")
    assert "fonts.googleapis" not in rendered.html  # mjml2html(fonts={})


def test_every_layout_table_is_presentational(seed):
    _, rendered = seed
    # including the Outlook-only tables inside conditional comments
    tables = re.findall(r"<table\b[^>]*>", rendered.html)
    assert len(tables) > 10
    missing = [t for t in tables if 'role="presentation"' not in t]
    assert not missing, missing[:3]


def test_every_image_has_alt_text(seed, settings):
    issue, rendered = seed
    images = Page(rendered.html).all("img")
    assert len(images) == 2  # the logo and the featured story's photo
    assert all(img.get("alt") for img in images), images
    alts = {img["alt"] for img in images}
    assert settings.theme.logo.alt in alts
    assert issue.featured[0].image.alt in alts


def test_preheader_is_hidden(seed):
    issue, rendered = seed
    match = re.search(r'<div class="preheader" style="([^"]*)">\s*' + re.escape(issue.preheader),
                      rendered.html)
    assert match, "preheader not found"
    style = match.group(1).replace(" ", "")
    assert "display:none" in style and "max-height:0" in style and "opacity:0" in style
    # before any visible text of the body
    body_text = Page(rendered.html[rendered.html.index("<body"):]).text
    assert body_text.startswith(issue.preheader)
    # hidden text in the reading colour, not white on light grey: SpamAssassin scores the
    # latter (HTML_FONT_LOW_CONTRAST), which is what <mj-preview> writes
    assert "color:#222222" in style


def test_story_links_are_tracked(seed):
    issue, rendered = seed
    links = Page(rendered.html).links()
    story = f"{issue.featured[0].url}?{UTM}"
    assert story in links
    for item in issue.more:
        assert f"{item.url}?{UTM}" in links
    # Markdown links inside the body too
    assert f"https://alliescanada.ca/?{UTM}" in links


def test_seed_text_part(seed):
    issue, rendered = seed
    text = rendered.text
    assert text.startswith("CITIES OF MIGRATION\nMay 18, 2011\n")
    # headings underlined, bullets, quote, links as URLs
    assert "Intercultural Communication\n===========================" in text
    assert "\n- Cross-cultural competencies" in text
    assert "\n> On day one of the ALLIES conference" in text
    assert f"(https://alliescanada.ca/?{UTM})" in text
    # same order as the HTML
    order = [issue.featured[0].title, "More Stories", "Upcoming Webinars",
             "Looking for Past Issues?", "Unsubscribe:"]
    positions = [text.index(x) for x in order]
    assert positions == sorted(positions)


# -- text and links -------------------------------------------------------------------------------


def test_text_part_has_no_markup_and_fits_its_width(seed):
    _, rendered = seed
    _assert_clean_text(rendered.text)


def _assert_clean_text(text: str) -> None:
    assert not re.search(r"</?[a-zA-Z][^>]*>", text), re.search(r"</?[a-zA-Z][^>]*>", text)
    assert not re.search(r"&(#\d+|#x[0-9a-f]+|[a-z]+);", text, re.I)
    for line in text.splitlines():
        if len(line) > 78:
            assert URL_LINE.match(line), f"line too long and not a lone URL: {line!r}"
        assert line == line.rstrip(), f"trailing space: {line!r}"


def test_every_html_link_is_in_the_text(seed):
    _, rendered = seed
    links = set(Page(rendered.html).links())
    assert len(links) > 12
    missing = [link for link in links if link not in rendered.text]
    assert not missing, missing


def test_unsubscribe_placeholder_once_per_part_and_personalised(seed):
    _, rendered = seed
    assert rendered.html.count(UNSUBSCRIBE_PLACEHOLDER) == 1
    assert rendered.text.count(UNSUBSCRIBE_PLACEHOLDER) == 1
    assert f'href="{UNSUBSCRIBE_PLACEHOLDER}"' in rendered.html
    url = "https://newsletter.example.org/unsubscribe?t=abc&x=1"
    html, text = rendered.personalise(url)
    assert UNSUBSCRIBE_PLACEHOLDER not in html and UNSUBSCRIBE_PLACEHOLDER not in text
    assert 'href="https://newsletter.example.org/unsubscribe?t=abc&amp;x=1"' in html
    assert f"Unsubscribe: {url}" in text
    assert Page(html).links().count(url) == 1


def test_footer_has_address_and_why(seed, settings):
    _, rendered = seed
    page_text = Page(rendered.html).text
    for value in (settings.postal_address, settings.why):
        assert value in page_text
        assert " ".join(value.split()) in " ".join(rendered.text.split())
    view = settings.view_online_for("2011-05")
    assert view in Page(rendered.html).links() and view in rendered.text
    archive = f"{settings.archive_url}?{UTM}"
    assert archive in Page(rendered.html).links() and archive in rendered.text


# -- small issues --------------------------------------------------------------------------------


def test_titles_are_text_not_markup(settings):
    issue = make_issue(
        subject="Q&A: <Newcomers> & more",
        preheader="<b>not bold</b>",
        featured=[{"title": "Q&A: <Newcomers>", "body": "Raw <script>alert(1)</script> text",
                   "author": "<i>Editor</i>", "url": "https://example.org/qa"}],
        more=[{"title": "Q&A: <Newcomers> again", "url": "https://example.org/m",
               "summary": "a < b && c > d"}],
        events=[{"title": "<Event> & co", "date": "2011-06-14"}],
    )
    rendered = render_issue(issue, settings)
    page = Page(rendered.html)
    assert "<Newcomers>" not in rendered.html and "<script>" not in rendered.html
    assert "Q&amp;A: &lt;Newcomers&gt;" in rendered.html
    for shown in ("Q&A: <Newcomers>", "Raw <script>alert(1)</script> text", "By <i>Editor</i>",
                  "a < b && c > d", "<Event> & co"):
        assert shown in page.text, shown
        assert shown in rendered.text, shown
    assert unescape(page.title) == "Q&A: <Newcomers> & more"
    assert not page.all("script") and not page.all("i") and not page.all("b")


def test_any_script_survives(settings):
    issue = make_issue(
        subject="Ελλάδα · العربية · 北京",
        featured=[{"title": "Αθήνα: Ελλάδα",
                   "body": "مرحبا بكم في **العربية** — Zürich, Montréal"}],
        more=[{"title": "北京: 城市", "url": "https://example.org/北京",
               "summary": "Ελληνικά " * 40}],
    )
    rendered = render_issue(issue, settings)
    page = Page(rendered.html)
    for text in ("Αθήνα: Ελλάδα", "العربية", "Zürich, Montréal", "北京: 城市"):
        assert text in page.text
        assert text in rendered.text
    assert unescape(page.title) == "Ελλάδα · العربية · 北京"
    _assert_clean_text(rendered.text)


def test_no_events_and_events(settings):
    empty = render_issue(make_issue(events=[]), settings)
    assert "No events." in Page(empty.html).text and "No events." in empty.text

    issue = make_issue(events=[
        {"title": "Community Policing webinar", "date": "2011-06-14",
         "url": "https://example.org/webinar", "location": "Online"},
        {"title": "Evening talk", "date": dt.datetime(2011, 6, 20, 18, 30)},
    ])
    rendered = render_issue(issue, settings)
    page = Page(rendered.html)
    assert "No events." not in page.text and "No events." not in rendered.text
    for shown in ("June 14, 2011", "Community Policing webinar", "Online",
                  "June 20, 2011, 6:30 PM", "Evening talk"):
        assert shown in page.text and shown in rendered.text
    assert f"https://example.org/webinar?{UTM}" in page.links()
    assert page.text.index("Community Policing") < page.text.index("Evening talk")


def test_long_teasers_are_shortened_at_a_word_boundary(settings):
    long = ("The events of February 22, 2011 had a profound effect on immigrants within the "
            "city of Christchurch, reports Justin Treagus, Executive Director of the settlement "
            "agency, who describes how neighbours helped each other through the aftermath.")
    short = "A short teaser stays as written."
    issue = make_issue(more=[
        {"title": "Long", "url": "https://example.org/long", "summary": long},
        {"title": "Short", "url": "https://example.org/short", "summary": short},
    ])
    rendered = render_issue(issue, settings)
    expected = shorten(long, 160)
    assert len(long) > 160 and len(expected) <= 160 and expected.endswith("…")
    kept = expected[:-1]
    assert long.startswith(kept) and long[len(kept)] == " "  # cut between words
    page_text = Page(rendered.html).text
    assert expected in page_text and long not in page_text
    assert short in page_text and short + "…" not in page_text
    assert " ".join(expected.split()) in " ".join(rendered.text.split())


def test_markdown_structure_in_both_parts(settings):
    body = (
        "Intro with a [link](https://example.org/a?x=1#part) and *emphasis*.\n\n"
        "## A heading\n\n"
        "- first bullet\n- second bullet\n\n"
        "1. step one\n2. step two\n\n"
        "> a quoted line\n\n"
        "Write to [us](mailto:info@example.org)."
    )
    rendered = render_issue(make_issue(featured=[{"title": "T", "body": body}]), settings)
    page = Page(rendered.html)
    assert [a for a in page.all("h3")] and page.all("ol") and page.all("em")
    tracked = f"https://example.org/a?x=1&{UTM}#part"
    assert tracked in page.links()
    assert "mailto:info@example.org" in page.links()  # never tracked
    text = rendered.text
    assert "A heading\n=========" in text
    assert "- first bullet\n- second bullet" in text
    assert "1. step one\n2. step two" in text
    assert "> a quoted line" in text
    assert f"link ({tracked})" in " ".join(text.split())
    assert "us (info@example.org)" in text
    _assert_clean_text(text)


def test_optional_parts_may_all_be_missing(settings):
    """The mj-head and every optional block render with and without their values (the
    trim_blocks whitespace pitfall of mjml-python)."""
    from dataclasses import replace

    bare = replace(settings, archive_url=None, view_online_url=None,
                   theme=replace(settings.theme, logo=None), website=None)
    for s in (settings, bare):
        for issue in (make_issue(), make_issue(preheader="Hello", intro="An *intro*.", more=[
                {"title": "M", "url": "https://example.org/m"}])):
            rendered = render_issue(issue, s)
            assert "A story" in Page(rendered.html).text
            assert ("Looking for Past Issues?" in rendered.text) == (s.archive_url is not None)
    rendered = render_issue(make_issue(intro="An *intro*."), bare)
    assert not Page(rendered.html).all("img")
    assert "An *intro*." in rendered.text and "<em>intro</em>" in rendered.html


def test_mjml_is_exposed_and_escaped(settings):
    mjml = render_mjml(make_issue(subject="A & B"), settings)
    assert mjml.lstrip().startswith('<mjml lang="en" dir="auto">')
    assert "<mj-title>A &amp; B</mj-title>" in mjml
    assert render_text(make_issue(), settings).endswith(f"Unsubscribe: {UNSUBSCRIBE_PLACEHOLDER}\n")


def test_template_errors_name_the_template(settings):
    (settings.templates_dir / "email.txt.j2").write_text("{{ nope }}\n", encoding="utf-8")
    with pytest.raises(RenderError) as info:
        render_issue(make_issue(), settings)
    assert "email.txt.j2" in str(info.value) and "nope" in str(info.value)


def test_template_runtime_error_names_the_line(settings):
    path = settings.templates_dir / "email.txt.j2"  # a project override of the default
    path.write_bytes((DEFAULT_TEMPLATES / "email.txt.j2").read_bytes())
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[5] += " {{ issue.nope }}"  # an undefined attribute on line 6
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RenderError) as info:
        render_issue(make_issue(), settings)
    assert str(info.value).startswith(f"{path.resolve()}:6: template error: "), str(info.value)


def test_template_that_is_not_utf8_is_a_render_error(settings):
    path = settings.templates_dir / "email.txt.j2"  # a project override of the default
    path.write_bytes((DEFAULT_TEMPLATES / "email.txt.j2").read_bytes())
    path.write_bytes(path.read_bytes() + b"\xff")  # was a UnicodeDecodeError traceback
    with pytest.raises(RenderError) as info:
        render_issue(make_issue(), settings)
    assert str(info.value) == f"{path}: not UTF-8 text; save the template as UTF-8"


def test_rendered_is_the_shared_type(seed):
    _, rendered = seed
    assert isinstance(rendered, Rendered)
    assert rendered.slug == "2011-05" and rendered.subject.startswith("Cities of Migration")


# -- filters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("https://example.org/a", "https://example.org/a?u=1&c=x"),
    ("https://example.org/a?id=7", "https://example.org/a?id=7&u=1&c=x"),
    ("https://example.org/a?id=7#top", "https://example.org/a?id=7&u=1&c=x#top"),
    ("https://example.org/a?u=mine", "https://example.org/a?u=mine&c=x"),
    ("mailto:info@example.org", "mailto:info@example.org"),
    (UNSUBSCRIBE_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER),
])
def test_track_url(url, expected):
    assert track_url(url, {"u": "1", "c": "x"}) == expected


def test_shorten_and_dates():
    assert shorten("short", 160) == "short"
    assert shorten("one two three four five", 12) == "one two…"
    assert len(shorten("x" * 300, 160)) == 160
    assert format_date(dt.date(2011, 5, 18)) == "May 18, 2011"
    assert format_date(dt.datetime(2011, 6, 14, 14, 0)) == "June 14, 2011, 2:00 PM"


def test_right_to_left_language(settings):
    from dataclasses import replace

    rendered = render_issue(make_issue(featured=[{"title": "مرحبا", "body": "> اقتباس\n\n- بند"}]),
                            replace(settings, language="ar"))
    html_tag = Page(rendered.html).all("html")[0]
    assert html_tag["lang"] == "ar" and html_tag["dir"] == "rtl"
    assert re.search(r'<blockquote style="[^"]*border-right:4px solid', rendered.html)
    assert re.search(r'<ul style="[^"]*padding:0 24px 0 0', rendered.html)
    ltr = render_issue(make_issue(), settings)
    assert Page(ltr.html).all("html")[0]["dir"] == "auto"


def test_plain_text_keeps_long_content_within_the_width(settings):
    long_url = "https://example.org/" + "a" * 100
    body = (f"See {long_url} and [this]({long_url}).\n\n"
            "```\n" + "x = 1 " * 40 + "\n```\n\n"
            "> " + "quoted words " * 20 + "\n\n"
            "1. " + "numbered words " * 12 + "\n   - " + "nested bullet " * 10 + "\n")
    issue = make_issue(featured=[{"title": "Long " * 30, "body": body, "author": "An " * 40,
                                  "url": "https://example.org/s", "cta": "Read " * 25}],
                       events=[{"title": "Event " * 20, "date": "2011-06-14",
                                "location": "Place " * 20}])
    text = render_issue(issue, settings).text
    _assert_clean_text(text)
    assert long_url in text and f"this ({long_url}?{UTM})" in " ".join(text.split())
    assert "\n    x = 1 x = 1" in text  # code stays indented
    assert "\n   - nested bullet" in text


@pytest.mark.parametrize(("kind", "name", "folder"), [
    ("email", "email.txt.j2", ""),
    ("web", "error.html", "web"),
    ("archive", "index.html", "archive"),
])
def test_template_factory_defaults_come_from_the_package_and_the_project_overrides(
        settings, kind, name, folder):
    from newsletter.compose.templates import environment, forget_environments

    default = environment(settings, kind).get_template(name)
    assert default.filename == str(DEFAULT_TEMPLATES.joinpath(*filter(None, [folder, name])))
    override = settings.templates_dir / folder / name
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text("{{ 'project' }} <&>", encoding="utf-8")
    if kind == "web":  # serve reads its templates once: a new process sees the override
        forget_environments()
    template = environment(settings, kind).get_template(name)  # no restart for the others
    assert template.filename == str(override)
    assert template.render() == "project <&>"
    override.unlink()  # back to the default
    if kind != "web":
        assert environment(settings, kind).get_template(name).filename == default.filename


def test_template_factory_rejects_an_unknown_kind(settings):
    from newsletter.compose.templates import environment

    with pytest.raises(ValueError, match="unknown template kind 'mail'"):
        environment(settings, "mail")  # type: ignore[arg-type]

"""The static web archive: every issue as a public page, an index by year, an Atom feed.

Each issue page is the email itself (`render_issue`, the same HTML subscribers get) with every
personal part removed: the per-recipient unsubscribe link becomes a link to the subscribe page
(`links.subscribe`), and the "View in browser" links, which would point at the page itself,
become a link back to the index. Pages are named `<slug>.html`, so `links.view_online` should be
`<links.archive>{slug}.html`.

The pipeline gathers and renders everything first and writes only when all of it succeeded,
into a temporary folder that then replaces the old site in one rename: a reader (or a web
server) never sees a half-written archive.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

from newsletter.compose.building import ASSETS_FOLDER
from newsletter.compose.images import Asset, copy_assets
from newsletter.compose.issue import load_issue
from newsletter.compose.render import UNSUBSCRIBE_PLACEHOLDER, Rendered, render_issue
from newsletter.compose.templates import environment
from newsletter.config import Settings
from newsletter.errors import NewsletterError

MARKER = ".newsletter-archive"  # written into every site; only such folders are replaced
ATOM = "http://www.w3.org/2005/Atom"

Progress = Callable[[int, int], None]  # (issues rendered, total)

_ANCHOR = re.compile(r"<a\b(?P<attrs>[^>]*)>(?P<label>.*?)</a>", re.S | re.I)
_HREF = re.compile(r"""(\bhref\s*=\s*)(["'])(.*?)\2""", re.S | re.I)


@dataclass(frozen=True)
class Page:
    slug: str
    subject: str
    date: dt.date
    preheader: str | None
    html: str
    assets: tuple[Asset, ...] = ()

    @property
    def filename(self) -> str:
        return f"{self.slug}.html"


def public_html(rendered: Rendered, settings: Settings, *, index_href: str = "index.html") -> str:
    """The rendered email with nothing personal in it, ready to publish."""
    subscribe = settings.subscribe_url
    view_online = settings.view_online_for(rendered.slug)

    def relink(attrs: str, href: str) -> str:
        return _HREF.sub(lambda m: f"{m.group(1)}{m.group(2)}{html.escape(href)}{m.group(2)}",
                         attrs, count=1)

    def fix(match: re.Match) -> str:
        attrs = match.group("attrs")
        found = _HREF.search(attrs)
        href = html.unescape(found.group(3)).strip() if found else None
        if href == UNSUBSCRIBE_PLACEHOLDER:
            return f"<a{relink(attrs, subscribe)}>Subscribe</a>" if subscribe else ""
        if view_online and href == view_online:
            return f"<a{relink(attrs, index_href)}>All issues</a>"
        return match.group(0)

    page = _ANCHOR.sub(fix, rendered.html)
    # "You are receiving this email because you subscribed ..." is not true of a web page.
    why = re.escape(html.escape(settings.why.strip(), quote=False))
    page = re.sub(rf"<p\b[^>]*>\s*{why}\s*</p>", "", page)
    # A placeholder outside a link (a custom template): never publish it.
    page = page.replace(UNSUBSCRIBE_PLACEHOLDER, html.escape(subscribe or ""))
    # A separator left dangling by a removed link ("· </p>" or "<p>·").
    page = re.sub(r"\s*·\s*(</p>)", r"\1", page)
    page = re.sub(r"(<p\b[^>]*>)\s*·\s*", r"\1", page)
    return _ensure_head(page, rendered.subject, settings.language)


def _ensure_head(page: str, title: str, language: str) -> str:
    """lang, title, viewport and the feed link, whatever the user's template left out."""
    if not re.search(r"<html\b[^>]*\blang=", page, re.I):
        page = re.sub(r"<html\b", f'<html lang="{html.escape(language)}"', page, count=1,
                      flags=re.I)
    extra = ['<link rel="alternate" type="application/atom+xml" title="Feed" href="feed.xml">']
    if not re.search(r"<title>\s*\S", page, re.I):
        page = re.sub(r"<title>\s*</title>", "", page, flags=re.I)
        extra.append(f"<title>{html.escape(title)}</title>")
    if 'name="viewport"' not in page:
        extra.append('<meta name="viewport" content="width=device-width, initial-scale=1">')
    return re.sub(r"(<head\b[^>]*>)", lambda m: m.group(1) + "".join(extra), page, count=1,
                  flags=re.I)


def collect(settings: Settings, issues_dir: Path | None = None, *,
            progress: Progress | None = None, until: dt.date | None = None) -> list[Page]:
    """Load and render every issue; the first bad one raises its error (nothing written).

    until: issues dated after this day are drafts of coming months (what `newsletter new`
    writes) and are left out of the public archive; None publishes every issue.

    progress(done, total): issues rendered so far, (0, total) first; rendering is the slow
    part (some 20 ms an issue, so seconds for a decade of monthly issues)."""
    folder = Path(issues_dir or settings.issues_dir)
    if not folder.is_dir():
        raise NewsletterError("folder not found", file=folder)
    paths = sorted(folder.glob("*.yaml"))
    pages = []
    if progress is not None:
        progress(0, len(paths))
    for path in paths:
        issue = load_issue(path)
        if until is not None and issue.date > until:
            continue
        rendered = render_issue(issue, settings)
        pages.append(Page(rendered.slug, rendered.subject, issue.date, rendered.preheader,
                          public_html(rendered, settings), rendered.assets))
        if progress is not None:
            progress(len(pages), len(paths))
    pages.sort(key=lambda p: (p.date, p.slug), reverse=True)
    return pages


def page_url(settings: Settings, page: Page) -> str:
    """Absolute when links.archive is set (the feed needs that), else relative."""
    return urljoin(settings.archive_url, page.filename) if settings.archive_url else page.filename


def index_html(settings: Settings, pages: list[Page]) -> str:
    years: dict[int, list[Page]] = {}
    for page in pages:  # already newest first
        years.setdefault(page.date.year, []).append(page)
    return environment(settings, "archive").get_template("index.html").render(
        settings=settings, years=list(years.items()), theme=settings.theme,
        long_date=lambda d: f"{d.day} {d.strftime('%B %Y')}",
    )


def atom_feed(settings: Settings, pages: list[Page], generated: dt.datetime) -> bytes:
    """An Atom 1.0 feed (RFC 4287): id, title, updated, author, links, one entry per issue."""
    ET.register_namespace("", ATOM)

    def el(parent, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        node = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text is not None:
            node.text = text
        return node

    def stamp(day: dt.date) -> str:
        return f"{day.isoformat()}T00:00:00Z"

    xml_lang = "{http://www.w3.org/XML/1998/namespace}lang"
    feed = ET.Element(f"{{{ATOM}}}feed", {xml_lang: settings.language})
    base = settings.archive_url
    el(feed, "id", base or f"urn:newsletter:{settings.list_id}")
    el(feed, "title", settings.name)
    el(feed, "subtitle", f"Every issue of the {settings.name} newsletter")
    el(feed, "updated", stamp(pages[0].date) if pages
       else generated.strftime("%Y-%m-%dT%H:%M:%SZ"))
    author = el(feed, "author")
    el(author, "name", settings.name)
    if settings.website:
        el(author, "uri", settings.website)
    if base:
        el(feed, "link", rel="self", type="application/atom+xml", href=urljoin(base, "feed.xml"))
        el(feed, "link", rel="alternate", type="text/html", href=base)
    el(feed, "generator", "newsletter")
    for page in pages:
        entry = el(feed, "entry")
        url = page_url(settings, page)
        el(entry, "id", url if base else f"urn:newsletter:{settings.list_id}:{page.slug}")
        el(entry, "title", page.subject)
        el(entry, "updated", stamp(page.date))
        el(entry, "published", stamp(page.date))
        el(entry, "link", rel="alternate", type="text/html", href=url)
        el(entry, "summary", page.preheader or page.subject)
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"


def build_archive(settings: Settings, out: Path, *, issues_dir: Path | None = None,
                  progress: Progress | None = None,
                  until: dt.date | None = None) -> list[Page]:
    """Write the whole site to `out` (replacing a previous archive there), or nothing at all.

    progress, until: see `collect`."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NewsletterError("exists and is not a folder", file=out)
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise NewsletterError(
            "folder is not empty and was not written by `newsletter archive`; "
            "refusing to replace it (choose another --out)", file=out)
    pages = collect(settings, issues_dir, progress=progress, until=until)
    index = index_html(settings, pages)
    feed = atom_feed(settings, pages, dt.datetime.now(dt.UTC))

    try:
        _write(out, pages, index, feed)
    except OSError as exc:
        raise NewsletterError(f"cannot write the archive: {exc.strerror or exc}",
                              file=exc.filename or out) from None
    return pages


def _write(out: Path, pages: list[Page], index: str, feed: bytes) -> None:
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    try:
        for page in pages:
            (tmp / page.filename).write_text(page.html, encoding="utf-8")
        (tmp / "index.html").write_text(index, encoding="utf-8")
        (tmp / "feed.xml").write_bytes(feed)
        copy_assets([a for page in pages for a in page.assets], tmp / ASSETS_FOLDER)
        (tmp / MARKER).write_text("written by `newsletter archive`; replaced on each run\n",
                                  encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a web server must read it
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap(new: Path, out: Path) -> None:
    """Put `new` where `out` is: two renames on the same file system, old copy removed after."""
    if not out.exists():
        os.replace(new, out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.replace(out, old)
    try:
        os.replace(new, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)

"""Read the rendered parts once: links and images with their story, and URL comparison helpers.

Every check works from this one parse, so the HTML is read with lxml a single time per run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from newsletter.compose.render import UNSUBSCRIBE_PLACEHOLDER

HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
# Story titles are the top headings; sub-headings of a story body sit below them.
STORY_LEVELS = ("h1", "h2")


@dataclass(frozen=True)
class Anchor:
    href: str
    text: str  # what a reader sees: the text, or the alt of a linked image
    story: str | None
    label: str | None = None  # aria-label or title, which screen readers announce instead


@dataclass(frozen=True)
class Img:
    src: str
    alt: str | None  # None when the attribute is missing
    width: str | None
    story: str | None


@dataclass(frozen=True)
class TextLink:
    url: str
    context: str  # the line it sits on, without the URL
    story: str | None


@dataclass
class Document:
    html: str
    text: str
    root: object | None  # lxml element, None when the HTML could not be parsed
    lang: str | None
    anchors: list[Anchor] = field(default_factory=list)
    images: list[Img] = field(default_factory=list)
    text_links: list[TextLink] = field(default_factory=list)

    @property
    def visible_html_text(self) -> str:
        if self.root is None:
            return ""
        body = self.root.find("body")
        return squash(text_of(body if body is not None else self.root))


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def text_of(element) -> str:
    """The text content of an element, skipping <style>, <script> and comments."""
    parts: list[str] = []

    def walk(el) -> None:
        if isinstance(el.tag, str) and el.tag not in ("style", "script", "title", "head"):
            if el.text:
                parts.append(el.text)
            for child in el:
                walk(child)
        if el.tail:
            parts.append(el.tail)

    if element.text:
        parts.append(element.text)
    for child in element:
        walk(child)
    return " ".join(parts)


def is_web(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def comparable(url: str) -> str:
    """A URL without its utm_* parameters, fragment and trailing slash, for matching the same
    link across the HTML and text parts (tracking parameters may differ between them)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not k.lower().startswith("utm_")]
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, urlencode(query), ""))


# -- the HTML part ----------------------------------------------------------------------------


def parse(html: str, text: str) -> Document:
    import lxml.html
    from lxml import etree

    # Bytes with an explicit parser encoding: lxml refuses a str that carries an XML encoding
    # declaration, and a <meta charset> must not make it guess otherwise.
    parser = lxml.html.HTMLParser(encoding="utf-8")
    try:
        root = (lxml.html.document_fromstring(html.encode("utf-8"), parser=parser)
                if html.strip() else None)
    except (etree.ParserError, ValueError):
        root = None
    doc = Document(html=html, text=text, root=root, lang=None)
    if root is not None:
        doc.lang = (root.get("lang") or root.get("xml:lang") or "").strip() or None
        _collect(doc, root)
    doc.text_links = text_links(text)
    return doc


def _collect(doc: Document, root) -> None:
    story: str | None = None
    heading: str | None = None
    for el in root.iter():
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in HEADINGS:
            title = squash(text_of(el))
            if title:
                heading = title
                if tag in STORY_LEVELS:
                    story = title
        elif tag == "a" and el.get("href") is not None:
            href = el.get("href", "").strip()
            visible = squash(text_of(el))
            if not visible:  # a linked image: its alt is the link text
                visible = squash(" ".join(i.get("alt") or "" for i in el.iter("img")))
            label = (el.get("aria-label") or el.get("title") or "").strip() or None
            doc.anchors.append(Anchor(href, visible, story or heading, label))
        elif tag == "img":
            doc.images.append(Img(
                src=(el.get("src") or "").strip(),
                alt=el.get("alt"),
                width=el.get("width"),
                story=story or heading,
            ))


# -- the text part ----------------------------------------------------------------------------

_URL = re.compile(r"https?://[^\s<>\"]+", re.I)
_UNDERLINE = re.compile(r"^\s*(=+|-+|~+|\*+)\s*$")


def _trim(url: str) -> str:
    """Drop punctuation that ends a sentence rather than the URL; keep balanced parentheses."""
    while url and url[-1] in ".,;:!?'\">]}*":
        url = url[:-1]
    while url.endswith(")") and url.count(")") > url.count("("):
        url = url[:-1]
    return url


def _words(line: str) -> str:
    return squash(_URL.sub(" ", line)).strip(" <>[]()-:|*")


def text_links(text: str) -> list[TextLink]:
    links: list[TextLink] = []
    lines = text.splitlines()
    story: str | None = None
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        stripped = line.strip()
        # A story title: "Title" underlined by === on the next line, or a "# Title" line
        # (--- underlines and ## lines are sub-headings inside a story).
        if stripped and _UNDERLINE.match(nxt) and nxt.strip().startswith("=") \
                and not _UNDERLINE.match(line):
            story = stripped
        elif re.match(r"#\s", stripped):
            story = stripped[1:].strip() or story
        for match in _URL.finditer(line):
            url = _trim(match.group(0))
            context = _words(line)
            if not context and i > 0:  # a URL on a line of its own: the line above names it
                context = _words(lines[i - 1])
            links.append(TextLink(url, context, story))
    return links


def has_placeholder(value: str) -> bool:
    return UNSUBSCRIBE_PLACEHOLDER in value

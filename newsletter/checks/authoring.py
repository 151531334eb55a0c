"""What reviewers miss: text left from the skeleton or from examples, insecure http:// links,
teasers the email shortens, and pictures much larger than the email needs.

Placeholders are read from the issue itself (so each finding names its field) and from the
skeleton that `newsletter new` writes (so a changed skeleton is caught without a list to keep
in step with it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ruamel.yaml import YAML

from newsletter.checks.document import Document, squash
from newsletter.checks.findings import Finding, error, note, warning
from newsletter.checks.http import Probe
from newsletter.compose.images import Asset
from newsletter.compose.issue import markdown_links

SKELETON = Path(__file__).resolve().parent.parent / "compose" / "skeleton.yaml"
# Fields of the skeleton whose text is a fine default, not a placeholder.
_KEEP = {"cta", "date", "url"}
# A skeleton phrase this long is a placeholder wherever it appears; shorter ones ("Author
# name", "A bullet") only when they are the whole value or the whole line.
_ANYWHERE_WORDS = 4
EXAMPLE_DOMAINS = ("example.org", "example.com", "example.net", "example.edu")
_LOREM = re.compile(r"\blorem ipsum\b", re.I)
# Newsroom marks for "to come" / "to do": as whole words in capitals only ("TK" inside
# "TKO" or a lower-case "tk" is someone's text).
_MARKS = re.compile(r"(?<![\w/.-])(TK|TKTK|TODO|FIXME)(?![\w/-])")
# A local picture larger than this many times what the email needs is worth a word.
_MUCH_LARGER = 2.0
REMOTE_IMAGE_NOTE_BYTES = 300 * 1024


def _field(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


@cache
def skeleton_phrases() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(phrases caught anywhere, phrases caught as a whole value or line) of the skeleton."""
    try:
        data = YAML(typ="safe").load(SKELETON.read_text(encoding="utf-8")
                                     .replace("{date}", "2000-01-01"))
    except (OSError, ValueError):
        return (), ()
    anywhere: set[str] = set()
    whole: set[str] = set()

    def visit(value: Any, key: str | None) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                visit(v, str(k))
        elif isinstance(value, list):
            for v in value:
                visit(v, key)
        elif isinstance(value, str) and key not in _KEEP:
            for line in value.splitlines():
                line = re.sub(r"^\s*(?:[-*>]|#+|\d+\.)\s+", "", line)
                for part in re.split(r"\{\w+\}", line):  # {name}, {month}: filled in
                    part = _plain(part).strip(" –-:;,.")
                    if len(part.split()) >= _ANYWHERE_WORDS:
                        anywhere.add(part.casefold())
                    elif len(part.split()) >= 2:
                        whole.add(part.casefold())

    visit(data, None)
    return tuple(sorted(anywhere)), tuple(sorted(whole))


def _plain(text: str) -> str:
    """Markdown emphasis and link syntax removed, spaces collapsed: what a reader reads."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[*_`]+", "", text)
    return squash(text)


def _texts(issue: Any) -> Iterator[tuple[tuple, str]]:
    """(location, text) of every text an officer writes in an issue."""
    for key in ("subject", "preheader", "intro"):
        if getattr(issue, key, None):
            yield (key,), getattr(issue, key)
    for i, story in enumerate(issue.featured):
        for key in ("title", "author", "body", "cta"):
            if getattr(story, key, None):
                yield ("featured", i, key), getattr(story, key)
        if story.image is not None:
            yield ("featured", i, "image", "alt"), story.image.alt
    for i, story in enumerate(issue.more):
        for key in ("title", "summary"):
            if getattr(story, key, None):
                yield ("more", i, key), getattr(story, key)
    for i, event in enumerate(issue.events):
        for key in ("title", "location"):
            if getattr(event, key, None):
                yield ("events", i, key), getattr(event, key)


def _urls(issue: Any) -> Iterator[tuple[tuple, str]]:
    if issue.intro:
        for _, url in markdown_links(issue.intro):
            yield ("intro",), url
    for i, story in enumerate(issue.featured):
        if story.url:
            yield ("featured", i, "url"), story.url
        if story.image is not None and not story.image.is_local:
            yield ("featured", i, "image", "src"), story.image.src
        for _, url in markdown_links(story.body):
            yield ("featured", i, "body"), url
    for i, story in enumerate(issue.more):
        yield ("more", i, "url"), story.url
    for i, event in enumerate(issue.events):
        if event.url:
            yield ("events", i, "url"), event.url


def _story(issue: Any, loc: tuple) -> str | None:
    if len(loc) >= 2 and loc[0] in ("featured", "more", "events"):
        return getattr(getattr(issue, loc[0])[loc[1]], "title", None)
    return None


def _example_host(url: str) -> str | None:
    try:
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return None
    if not host and url.lower().startswith("mailto:"):
        host = url.split("@", 1)[-1].split("?", 1)[0].lower()
    for domain in EXAMPLE_DOMAINS:
        if host == domain or host.endswith("." + domain):
            return domain
    if host.endswith((".example", ".invalid", ".test")) or host == "localhost":
        return host
    return None


def _quote(text: str, limit: int = 60) -> str:
    text = squash(text)
    return f'"{text}"' if len(text) <= limit else f'"{text[: limit - 1].rstrip()}…"'


def check_placeholders(issue: Any) -> list[Finding]:
    """Errors for text and links left from the skeleton or from examples."""
    anywhere, whole = skeleton_phrases()
    findings: list[Finding] = []
    for loc, text in _texts(issue):
        name, story = _field(loc), _story(issue, loc)
        plain = _plain(text).casefold()
        lines = {_plain(re.sub(r"^\s*(?:[-*>]|#+|\d+\.)\s+", "", line)).casefold()
                 .strip(" –-:;,.") for line in text.splitlines()}
        hit = next((p for p in anywhere if p in plain), None) or next(
            (p for p in whole if p in lines or p == plain.strip(" –-:;,.")), None)
        if hit is not None:
            findings.append(error("content", f"{name}: {_quote(text)} is text from the "
                                  "skeleton of `newsletter new`: write the real one", story))
            continue
        if _LOREM.search(text):
            findings.append(error("content", f"{name}: \"Lorem ipsum\" is filler text: write "
                                  "the real one", story))
            continue
        mark = _MARKS.search(re.sub(r"https?://\S+", "", text))
        if mark:
            findings.append(error("content", f"{name}: {mark.group(1)} marks something still "
                                  f"to write: {_quote(text)}", story))
    for loc, url in _urls(issue):
        domain = _example_host(url)
        if domain:
            findings.append(error("links", f"{_field(loc)}: {url} is an example address "
                                  f"({domain}), not a real page: link the real one",
                                  _story(issue, loc)))
    return findings


def check_insecure(doc: Document) -> list[Finding]:
    """Warnings for http:// links and pictures: browsers flag them, and an image over http is
    blocked or marked "not secure" by several clients."""
    findings: list[Finding] = []
    seen: set[str] = set()
    for a in doc.anchors:
        if a.href.lower().startswith("http://") and a.href not in seen:
            seen.add(a.href)
            said = _quote(a.text or a.label or a.href, 50)
            findings.append(warning("security", f"{said} is an http:// link (not encrypted): "
                                    f"use https:// if the site has it: {a.href}", a.story))
    for img in doc.images:
        if img.src.lower().startswith("http://") and img.src not in seen:
            seen.add(img.src)
            findings.append(warning("security", f"image {_quote(img.alt or img.src, 50)} is "
                                    "loaded over http:// (not encrypted): some mail clients "
                                    f"block it; use https://: {img.src}", img.story))
    return findings


def check_shortened(issue: Any, doc: Document) -> list[Finding]:
    """A note for each summary the email shows shortened, with how much is cut."""
    findings: list[Finding] = []
    shown_text = doc.visible_html_text
    for i, story in enumerate(issue.more):
        if not story.summary:
            continue
        full = squash(story.summary)
        if full in shown_text:
            continue
        words = full.split()
        low, high = 0, len(words)  # the longest start of the summary that the email shows
        while low < high:
            mid = (low + high + 1) // 2
            if " ".join(words[:mid]) in shown_text:
                low = mid
            else:
                high = mid - 1
        if low == 0:
            continue  # a template that does not show summaries: nothing to say
        shown = " ".join(words[:low])
        cut = len(full) - len(shown)
        lost = squash(full[len(shown):])
        findings.append(note("content", f"more[{i}] \"{story.title}\": the summary is "
                             f"shortened to {len(shown)} of {len(full)} characters; "
                             f"{cut} are cut: {_quote(lost, 70)}", story.title))
    return findings


def check_image_sizes(assets: Iterable[Asset], doc: Document,
                      probes: Mapping[str, Probe] | None) -> list[Finding]:
    """Notes for pictures much larger than the email needs."""
    findings: list[Finding] = []
    for asset in assets:
        if asset.source_width > _MUCH_LARGER * asset.needed_width:
            findings.append(note(
                "images", f"{asset.source.name} is {asset.source_width}×{asset.source_height}"
                f" px ({asset.source_bytes / 1048576:.1f} MB); the email needs "
                f"{asset.needed_width} px: it is sent resized to {asset.width}×{asset.height}"
                f", so a smaller original would only save build time and disk space"))
    if probes:
        for img in doc.images:
            result = probes.get(img.src)
            size = result.size if result is not None and result.ok else None
            if size is not None and REMOTE_IMAGE_NOTE_BYTES < size <= 1024 * 1024:
                findings.append(note(
                    "images", f"image {_quote(img.alt or img.src, 50)} is {size // 1024} KB, "
                    "more than an email picture needs: a copy at twice its display width "
                    f"({img.width or '?'} px) would load faster (or use a local file, which "
                    f"build resizes): {img.src}", img.story))
    return findings

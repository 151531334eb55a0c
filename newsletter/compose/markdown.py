"""The Markdown dialect of `intro` and `body`: CommonMark with raw HTML switched off."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

from newsletter.compose.tracking import track_url


@cache
def parser() -> MarkdownIt:
    """For rendering: raw HTML in Markdown is shown as text, never passed through."""
    return MarkdownIt("commonmark", {"html": False, "typographer": False}).enable("strikethrough")


@cache
def permissive_parser() -> MarkdownIt:
    """For validation only: keeps every link (markdown-it would silently drop `javascript:`
    ones), so the loader can name them as errors instead of losing them."""
    md = MarkdownIt("commonmark", {"html": False}).enable("strikethrough")
    md.validateLink = lambda url: True
    return md


# -- rendering -------------------------------------------------------------------------------

# Headings inside a story sit below the story title (h2): the body's top heading level becomes
# h3 whatever the author wrote (`#`, `##` or `###`), and deeper ones follow, down to h6.
def _shift_headings(stream: list[Token]) -> None:
    levels = [int(t.tag[1]) for t in stream if t.type == "heading_open"]
    if not levels:
        return
    shift = 3 - min(levels)
    for token in stream:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + shift)}"


def tokens(source: str, utm: Mapping[str, str] | None = None) -> list[Token]:
    """The token stream of `source` with every link tracked (UTM added) and headings shifted
    below the story title. The HTML and the plain-text renderers both start from this, so the
    two parts of an email carry exactly the same links."""
    stream = parser().parse(source)
    _shift_headings(stream)
    for token in stream:
        for child in token.children or ():
            if child.type == "link_open":
                href = str(child.attrGet("href") or "")
                child.attrSet("href", track_url(href, utm or {}))
    return stream


def render_html(source: str, utm: Mapping[str, str] | None = None) -> str:
    """Markdown -> HTML for an email (raw HTML in the source is shown as text)."""
    md = parser()
    return md.renderer.render(tokens(source, utm), md.options, {})


"""The Markdown dialect of `intro` and `body`: CommonMark with raw HTML switched off."""

from __future__ import annotations

from functools import cache

from markdown_it import MarkdownIt


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

"""Helpers for the render tests: small issues built from dicts, HTML inspection."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from newsletter.compose.issue import Issue, issue_from_data

URL_LINE = re.compile(r"^[\s>*\-\d.]*\(?(https?://|mailto:)\S+?\)?[.,;:!?)]*$")


def make_issue(slug: str = "2011-05", **fields: Any) -> Issue:
    """A valid issue; `fields` override the defaults (pass None to drop an optional one)."""
    data: dict[str, Any] = {
        "subject": "Test issue",
        "date": dt.date(2011, 5, 18),
        "featured": [{"title": "A story", "body": "Some *text*.", "url": "https://example.org/s"}],
    }
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not None}
    return issue_from_data(data, Path(f"issues/{slug}.yaml"))


class Page(HTMLParser):
    """The parts of an HTML document the tests look at."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text_parts: list[str] = []
        self.title = ""
        self._in_title = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        self.text_parts.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())

    def links(self) -> list[str]:
        return [str(a["href"]) for a in self.all("a") if a.get("href")]

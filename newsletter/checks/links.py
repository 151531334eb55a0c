"""Links: every http(s) link of both parts, requested once each; broken ones name their text
and story so the editor can find them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from newsletter.checks.document import Document, has_placeholder, is_web
from newsletter.checks.findings import Finding, error, note, warning
from newsletter.checks.http import Probe


@dataclass(frozen=True)
class Place:
    text: str | None  # the link text (HTML) or the words beside the URL (text part)
    story: str | None
    part: str  # "html" or "text"

    def describe(self) -> str:
        if self.part == "html":
            said = f'"{_short(self.text)}"' if self.text else "a link without text"
        else:
            said = f'text part, "{_short(self.text)}"' if self.text else "text part"
        return f'{said} in "{self.story}"' if self.story else said


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def link_places(doc: Document) -> dict[str, list[Place]]:
    """Each distinct web URL of both parts, with where it appears (HTML first)."""
    places: dict[str, list[Place]] = {}
    for a in doc.anchors:
        if is_web(a.href) and not has_placeholder(a.href):
            places.setdefault(a.href, []).append(Place(a.text or a.label, a.story, "html"))
    for link in doc.text_links:
        if not has_placeholder(link.url):
            places.setdefault(link.url, []).append(Place(link.context, link.story, "text"))
    return places


def _where(places: list[Place]) -> tuple[str, str | None]:
    first = places[0]
    more = len({(p.text, p.story) for p in places}) - 1
    extra = f" (and {more} more place{'s' if more > 1 else ''})" if more > 0 else ""
    return first.describe() + extra, first.story


def check_links(
    places: Mapping[str, list[Place]], probes: Mapping[str, Probe] | None,
    web_copy: str | None = None,
) -> list[Finding]:
    """web_copy: this issue's "view in browser" address. It is usually published with the
    archive around the time of sending, so its 404 is a warning, not an error that would
    refuse the send."""
    if probes is None:
        return [note("links", f"{len(places)} links were not checked (offline)")]
    findings: list[Finding] = []
    for url, where_list in places.items():
        result = probes.get(url)
        if result is None:
            continue
        said, story = _where(where_list)
        if web_copy and url == web_copy and result.status in (404, 410):
            findings.append(warning("links", f"{said}: the web copy of this issue is not "
                                    f"online yet ({result.status}): publish it (newsletter "
                                    f"archive) before readers click it: {url}", story))
            continue
        findings.extend(judge(url, result, said, story, "links"))
    if not findings and places:
        findings.append(note("links", f"all {len(places)} links answered"))
    return findings


def judge(url: str, result: Probe, said: str, story: str | None, category: str):
    """The findings for one requested URL (links and images share the rules)."""
    answer = f"{result.status} {result.reason}".strip() if result.status else result.reason
    if result.doubt and not result.ok:
        yield warning(category, f"{said}: not verified, {answer} ({result.doubt}); open it "
                      f"in a browser: {url}", story)
        return
    if result.redirects:
        hop = result.redirects[0][0]
        target = result.final_url or result.redirects[-1][1]
        if result.ok:
            yield note(category, f"{said}: redirects ({hop}) to {target} (from {url})", story)
            return
        if result.status is not None and 300 <= result.status < 400:
            yield warning(category, f"{said}: redirects ({hop}) to a non-web address "
                          f"{target} (from {url})", story)
            return
        yield error(category, f"{said}: redirects ({hop}) to {target}, which failed: "
                    f"{answer} (from {url})", story)
        return
    if result.ok:
        return
    if result.status == 429:
        yield warning(category, f"{said}: the server rate-limited the check (429), "
                      f"not verified: {url}", story)
        return
    if result.status is None:
        yield error(category, f"{said}: unreachable, {answer}: {url}", story)
    else:
        yield error(category, f"{said}: broken, {answer}: {url}", story)

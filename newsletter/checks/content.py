"""Content and compliance: what the inbox shows first (subject, preheader) and what the law and
the mailbox providers require in every copy (postal address, a working unsubscribe link), plus
the plain-text twin carrying every link of the HTML."""

from __future__ import annotations

import re
from urllib.parse import quote

from newsletter.checks.document import Document, comparable, is_web, squash
from newsletter.checks.findings import Finding, error, warning
from newsletter.compose.render import UNSUBSCRIBE_PLACEHOLDER
from newsletter.project import unfinished_settings

SUBJECT_MAX = 78  # what most clients show before cutting; also RFC 5322's line advice
SUBJECT_MIN = 10


def check_subject(subject: str, preheader: str | None) -> list[Finding]:
    findings: list[Finding] = []
    subject = (subject or "").strip()
    if not subject:
        findings.append(error("compliance", "the subject is empty", "subject"))
    elif len(subject) > SUBJECT_MAX:
        findings.append(warning("compliance", f"the subject is {len(subject)} characters: "
                                f"inboxes cut it after about {SUBJECT_MAX}", "subject"))
    elif len(subject) < SUBJECT_MIN:
        findings.append(warning("compliance", f"the subject is only {len(subject)} "
                                "characters: say what this issue is about", "subject"))
    if not (preheader or "").strip():
        findings.append(warning("compliance", "no preheader: the inbox will preview the "
                                "first words of the email instead", "preheader"))
    return findings


def check_settings(settings) -> list[Finding]:
    """Placeholders `newsletter init --yes` wrote are errors: mail from example.org, a made-up
    postal address or unsubscribe links to nowhere must not reach a subscriber."""
    return [error("compliance", f"{field} is still the placeholder {value!r} of "
                  "`newsletter init`: set the real value in newsletter.toml", field)
            for field, value in unfinished_settings(settings)]


def _letters(text: str) -> str:
    """Only letters and digits, lower-cased: an address split by <br> or commas still matches."""
    return re.sub(r"[\W_]+", "", text.casefold())


def check_footer(doc: Document, postal_address: str) -> list[Finding]:
    findings: list[Finding] = []
    wanted = _letters(postal_address)
    for part, content in (("html", doc.visible_html_text), ("text", doc.text)):
        if wanted and wanted not in _letters(content):
            findings.append(error(
                "compliance", f"the postal address is missing from the {part} part "
                f"(CAN-SPAM and CASL require it in every message): {squash(postal_address)}",
                f"{part} footer"))
    # The HTML needs the placeholder inside a link, not just as text.
    if not any(UNSUBSCRIBE_PLACEHOLDER in a.href for a in doc.anchors):
        encoded = quote(UNSUBSCRIBE_PLACEHOLDER, safe="")
        if encoded.lower() in doc.html.lower() or encoded.replace("%7B", "%7b") in doc.html:
            findings.append(error("compliance", "the unsubscribe link was URL-encoded "
                                  f"({encoded}): it cannot be filled in for each recipient",
                                  "html footer"))
        else:
            findings.append(error("compliance", "no unsubscribe link in the html part (a link "
                                  f"to {UNSUBSCRIBE_PLACEHOLDER})", "html footer"))
    if UNSUBSCRIBE_PLACEHOLDER not in doc.text:
        findings.append(error("compliance", "no unsubscribe link in the text part "
                              f"({UNSUBSCRIBE_PLACEHOLDER})", "text footer"))
    return findings


def check_web_copy(doc: Document, view_online: str | None, archive: str | None) -> list[Finding]:
    """A "view in browser" or archive link, for readers whose client mangles the email."""
    wanted = {comparable(u) for u in (view_online, archive) if u}
    linked = {comparable(a.href) for a in doc.anchors if is_web(a.href)}
    if wanted and not wanted & linked:
        return [warning("compliance", "no \"view in browser\" or archive link in the html "
                        f"part (expected a link to {view_online or archive})", "html")]
    if not wanted and not any(
        re.search(r"view (it )?(in|on) (your )?(web )?browser|view online|archive",
                  a.text, re.I) for a in doc.anchors
    ):
        return [warning("compliance", "no \"view in browser\" or archive link (set "
                        "[links] view_online or archive in newsletter.toml)", "html")]
    return []


def check_text_twin(doc: Document) -> list[Finding]:
    """Every link of the HTML also in the plain-text part (tracking parameters aside)."""
    in_text = {comparable(link.url) for link in doc.text_links}
    findings: list[Finding] = []
    seen: set[str] = set()
    for a in doc.anchors:
        href = a.href
        if UNSUBSCRIBE_PLACEHOLDER in href:
            continue
        if is_web(href):
            key = comparable(href)
            missing = key not in in_text
        elif href.lower().startswith("mailto:"):
            address = href[7:].split("?", 1)[0]
            key = href.lower()
            missing = bool(address) and address.lower() not in doc.text.lower()
        else:
            continue
        if key in seen:
            continue
        seen.add(key)
        if missing:
            said = f'"{a.text or a.label or href}"'
            story = f' in "{a.story}"' if a.story else ""
            findings.append(warning("compliance", f"the link {said}{story} is missing from "
                                    f"the text part: {href}", a.story))
    return findings

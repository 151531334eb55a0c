"""Images: alt text on every <img> (many readers see only the alt: images are off by default
in Outlook), width set (Outlook sizes images by the attribute), reachable, and not huge."""

from __future__ import annotations

from collections.abc import Mapping

from newsletter.checks.document import Document, is_web
from newsletter.checks.findings import Finding, error, note, warning
from newsletter.checks.http import Probe
from newsletter.checks.links import judge

MAX_IMAGE_BYTES = 1024 * 1024


def _name(src: str, limit: int = 80) -> str:
    return src if len(src) <= limit else src[: limit - 1] + "…"


def check_images(doc: Document, probes: Mapping[str, Probe] | None) -> list[Finding]:
    findings: list[Finding] = []
    seen: set[str] = set()
    for img in doc.images:
        src = img.src
        label = f'image {_name(src) or "(no src)"}'
        if img.alt is None:
            findings.append(error("images", f"{label} has no alt attribute: readers with "
                                  "images off and screen readers get nothing", img.story))
        elif not img.alt.strip():
            findings.append(note("images", f"{label} has an empty alt: right only for a "
                                 "decorative image", img.story))
        if not (img.width or "").strip():
            findings.append(warning("images", f"{label} has no width attribute: Outlook "
                                    "shows it at its full size", img.story))
        if not src:
            findings.append(error("images", "an <img> has no src", img.story))
        elif src.lower().startswith("data:"):
            findings.append(warning("images", f"{label}: Gmail and Outlook do not show "
                                    "data: images; host it and link it by URL", img.story))
        elif not is_web(src) and not src.lower().startswith("cid:"):
            findings.append(error("images", f"{label}: not an absolute http(s) address, "
                                  "mail clients cannot load it", img.story))
        if not is_web(src) or src in seen:
            continue
        seen.add(src)
        if probes is None:
            continue
        result = probes.get(src)
        if result is None:
            continue
        said = f'image "{_name(img.alt or "", 50)}"' if img.alt else label
        findings.extend(judge(src, result, said, img.story, "images"))
        if result.ok and result.size is not None and result.size > MAX_IMAGE_BYTES:
            exact = result.size > MAX_IMAGE_BYTES + 1  # else counted only up to the limit
            shown = f" ({result.size / 1048576:.1f} MB)" if exact else ""
            findings.append(warning("images", f"{said} is over 1 MB{shown}: slow to load "
                                    f"on phones, resize it: {src}", img.story))
    if probes is None and seen:
        findings.append(note("images", f"{len(seen)} images were not requested (offline)"))
    return findings


def image_urls(doc: Document) -> list[str]:
    return [img.src for img in doc.images if is_web(img.src)]

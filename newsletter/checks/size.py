"""Gmail clips HTML at about 102 KB ("[Message clipped]"), hiding the footer and its
unsubscribe link; providers add bytes when they rewrite links, so warn well before."""

from __future__ import annotations

from newsletter.checks.findings import Finding, error, note, warning

KB = 1024
CLIP_BYTES = 102 * KB
WARN_BYTES = 90 * KB


def check_size(html: str) -> list[Finding]:
    size = len(html.encode("utf-8"))
    shown = f"{size / KB:.1f} KB"
    if size >= CLIP_BYTES:
        return [error("size", f"HTML is {shown}: Gmail clips messages at 102 KB and hides "
                      "the rest, footer and unsubscribe link included", "html")]
    if size >= WARN_BYTES:
        return [warning("size", f"HTML is {shown}: close to Gmail's 102 KB clipping limit "
                        "(keep under 90 KB to leave room for tracking links)", "html")]
    return [note("size", f"HTML is {shown} (Gmail clips at 102 KB)", "html")]

"""`newsletter check`: lint a rendered issue before it reaches anyone's inbox.

    findings = run_checks(render_issue(issue, settings), settings, offline=True)

Each concern lives in its own module (size, links, images, content, authoring,
accessibility, spam);
this module parses the rendered parts once, requests every URL once (links and images
together, a bounded number at a time) while SpamAssassin scores the message, and returns
the findings ordered errors first.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from newsletter.checks.findings import LEVELS, Finding, counts, ordered

__all__ = ["LEVELS", "Finding", "counts", "has_errors", "run_checks"]


def run_checks(
    rendered, settings, *, offline: bool = False, timeout: float = 5.0,
    concurrency: int = 8, spam: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[Finding]:
    """Every check on one rendered issue (`newsletter.compose.render.Rendered`).

    offline: no link or image requests (a note says so). timeout: seconds per request.
    concurrency: requests at once. spam: run SpamAssassin when it is installed.
    progress(done, total): distinct URLs answered so far, of all links and images (see
    `http.probe_all`); never called offline or when the issue has no web URLs.
    """
    from newsletter.checks import (
        accessibility,
        authoring,
        content,
        document,
        images,
        links,
        size,
    )
    from newsletter.checks import spam as spam_check
    from newsletter.checks.http import probe_all

    doc = document.parse(rendered.html, rendered.text)
    # The issue behind the parts (None for a Rendered made by hand): placeholders and
    # shortened summaries are judged from what the officer wrote.
    issue = getattr(rendered, "issue", None)
    view_online = settings.view_online_for(rendered.slug)
    places = links.link_places(doc)

    with ThreadPoolExecutor(max_workers=1) as side:
        # SpamAssassin takes a second or two to start: let it run while the links are tried.
        scored = side.submit(spam_check.check_spam, rendered, settings) if spam else None
        probes = None
        if not offline:
            urls = [*places, *images.image_urls(doc)]
            limits = {u: images.MAX_IMAGE_BYTES for u in images.image_urls(doc)}
            probes = probe_all(urls, timeout=timeout, concurrency=concurrency,
                               size_limits=limits, progress=progress)
        spam_findings = scored.result() if scored is not None else []

    findings = [
        *size.check_size(rendered.html),
        *links.check_links(places, probes, web_copy=view_online),
        *images.check_images(doc, probes),
        *content.check_subject(rendered.subject, rendered.preheader),
        *content.check_settings(settings),
        *content.check_footer(doc, settings.postal_address),
        *content.check_web_copy(doc, view_online, settings.archive_url),
        *content.check_text_twin(doc),
        *authoring.check_insecure(doc),
        *authoring.check_image_sizes(getattr(rendered, "assets", ()), doc, probes),
        *(authoring.check_placeholders(issue) if issue is not None else ()),
        *(authoring.check_shortened(issue, doc) if issue is not None else ()),
        *accessibility.check_lang(doc),
        *accessibility.check_contrast(doc),
        *accessibility.check_link_texts(doc),
        *spam_findings,
    ]
    return ordered(findings)


def has_errors(findings: list[Finding]) -> bool:
    return any(f.level == "error" for f in findings)

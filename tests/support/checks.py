"""Hand-made rendered emails for the check tests: a compliant shell around a given body."""

from __future__ import annotations

from newsletter.compose.render import UNSUBSCRIBE_PLACEHOLDER, Rendered

SUBJECT = "Cities of Migration – May 2011: Calgary: Talking Mentoring"


def email_html(body: str, settings, *, lang: str | None = "en", address: bool = True,
               unsubscribe: bool = True, web_copy: bool = True, slug: str = "2011-05") -> str:
    lang_attr = f' lang="{lang}"' if lang is not None else ""
    footer = []
    if web_copy:
        footer.append(f'<a href="{settings.view_online_for(slug)}" '
                      'style="color:#1d5b79">View in browser</a>')
    if address:
        footer.append(f"<p>{settings.postal_address}</p>")
    if unsubscribe:
        footer.append(f'<a href="{UNSUBSCRIBE_PLACEHOLDER}" style="color:#1d5b79">Unsubscribe</a>')
    return (
        f"<!doctype html><html{lang_attr}><head><title>x</title></head>"
        '<body style="background-color:#eef2f4;margin:0">'
        '<div style="display:none;max-height:0;overflow:hidden;color:#eef2f4">preheader</div>'
        '<table role="presentation" style="background-color:#ffffff;color:#222222"><tr><td>'
        f"{body}"
        f'<div style="color:#555555;font-size:13px">{"".join(footer)}</div>'
        "</td></tr></table></body></html>"
    )


def email_text(body: str, settings, *, address: bool = True, unsubscribe: bool = True,
               slug: str = "2011-05") -> str:
    lines = [f"View in browser: {settings.view_online_for(slug)}", "", body, "", "--"]
    if address:
        lines.append(settings.postal_address)
    if unsubscribe:
        lines.append(f"Unsubscribe: {UNSUBSCRIBE_PLACEHOLDER}")
    return "\n".join(lines) + "\n"


def rendered(body_html: str, body_text: str, settings, *, subject: str = SUBJECT,
             preheader: str | None = "Ideas from the ALLIES mentoring conference, and more.",
             html: str | None = None, text: str | None = None, **shell) -> Rendered:
    text_shell = {k: v for k, v in shell.items() if k in ("address", "unsubscribe")}
    return Rendered(
        slug="2011-05",
        subject=subject,
        preheader=preheader,
        html=html if html is not None else email_html(body_html, settings, **shell),
        text=text if text is not None else email_text(body_text, settings, **text_shell),
    )


def by(findings, category: str | None = None, level: str | None = None):
    return [f for f in findings
            if (category is None or f.category == category)
            and (level is None or f.level == level)]


def local_settings(settings, server):
    """Settings whose web addresses (view online, archive, website) point at the local test
    server, so an online check requests nothing beyond 127.0.0.1."""
    import dataclasses

    return dataclasses.replace(
        settings,
        view_online_url=server.url("/ok/archive/{slug}.html"),
        archive_url=server.url("/ok/archive/"),
        website=server.url("/ok/"),
        public_url=server.url("/ok"),
    )


def assert_only_local(r: Rendered, server) -> None:
    """Every URL an online check would request belongs to the local server."""
    from newsletter.checks import document, images, links

    doc = document.parse(r.html, r.text)
    urls = [*links.link_places(doc), *images.image_urls(doc)]
    assert urls and all(u.startswith(server.base + "/") for u in urls), urls

"""Issue -> Rendered(subject, html, text): once per issue; personalised per recipient later."""

from __future__ import annotations

from dataclasses import dataclass

# Survives MJML and premailer untouched (premailer runs with preserve_handlebar_syntax), so the
# expensive render runs once per issue and each copy only swaps this string for its own URL.
UNSUBSCRIBE_PLACEHOLDER = "{{unsubscribe_url}}"


@dataclass(frozen=True)
class Rendered:
    slug: str
    subject: str
    preheader: str | None
    html: str
    text: str

    def personalise(self, unsubscribe_url: str) -> tuple[str, str]:
        """(html, text) for one recipient."""
        from html import escape

        return (
            self.html.replace(UNSUBSCRIBE_PLACEHOLDER, escape(unsubscribe_url, quote=True)),
            self.text.replace(UNSUBSCRIBE_PLACEHOLDER, unsubscribe_url),
        )

"""Issue -> Rendered(subject, html, text): once per issue; personalised per recipient later.

The pipeline, all in memory: Markdown -> HTML (newsletter.compose.markdown) -> Jinja renders an MJML
document (templates/email.mjml.j2) -> mjml-python -> premailer inlines the CSS
(newsletter.compose.inline) -> final HTML. The plain text comes from its own template
(templates/email.txt.j2), never from scraping the HTML.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from jinja2 import TemplateError, TemplateNotFound
from mjml import mjml2html

from newsletter.compose.images import Asset, default_cache, is_local, prepare_image
from newsletter.compose.inline import inline_css
from newsletter.compose.issue import Issue
from newsletter.compose.templates import environment
from newsletter.compose.tracking import utm_params
from newsletter.config import Settings
from newsletter.errors import RenderError

# Survives MJML and premailer untouched (premailer runs with preserve_handlebar_syntax), so the
# expensive render runs once per issue and each copy only swaps this string for its own URL.
UNSUBSCRIBE_PLACEHOLDER = "{{unsubscribe_url}}"

# Languages written right to left: the email gets dir="rtl" and right-aligned text.
RTL_LANGUAGES = frozenset({"ar", "arc", "ckb", "dv", "fa", "he", "ku", "ps", "sd", "ug", "ur",
                           "yi"})

HTML_TEMPLATE = "email.mjml.j2"
TEXT_TEMPLATE = "email.txt.j2"


@dataclass(frozen=True)
class Rendered:
    slug: str
    subject: str
    preheader: str | None
    html: str
    text: str
    # What the checks read besides the parts: the issue as rendered (event times in their
    # zone) and the local pictures the HTML refers to (published under links.assets).
    issue: Issue | None = dataclasses.field(default=None, compare=False, repr=False)
    assets: tuple[Asset, ...] = dataclasses.field(default=(), compare=False, repr=False)

    def personalise(self, unsubscribe_url: str) -> tuple[str, str]:
        """(html, text) for one recipient: the placeholder replaced by their own unsubscribe
        URL (HTML-escaped in the HTML part, where it sits in an href)."""
        return (
            self.html.replace(UNSUBSCRIBE_PLACEHOLDER, escape(unsubscribe_url, quote=True)),
            self.text.replace(UNSUBSCRIBE_PLACEHOLDER, unsubscribe_url),
        )


def context(issue: Issue, settings: Settings) -> dict[str, Any]:
    """What both templates see."""
    utm = utm_params(settings.utm, issue.slug)
    rtl = settings.language.split("-")[0].lower() in RTL_LANGUAGES
    archive = settings.archive_url
    return {
        "issue": issue,
        "settings": settings,
        "theme": settings.theme,
        "utm": utm,
        "view_online": settings.view_online_for(issue.slug) if issue.slug else None,
        "archive_url": archive,
        "unsubscribe": UNSUBSCRIBE_PLACEHOLDER,
        "rtl": rtl,
        "start": "right" if rtl else "left",  # text alignment where a line starts
    }


def _render_template(name: str, settings: Settings, values: dict[str, Any]) -> str:
    try:
        return environment(settings, "email").get_template(name).render(values)
    except TemplateNotFound:
        raise RenderError("template not found", file=settings.templates_dir / name) from None
    except UnicodeDecodeError:
        raise RenderError("not UTF-8 text; save the template as UTF-8",
                          file=settings.templates_dir / name) from None
    except TemplateError as exc:
        file = getattr(exc, "filename", None)
        line = getattr(exc, "lineno", None)
        if line is None:  # a runtime error (an undefined name): Jinja's frames carry the line
            file, line = _template_frame(exc, str(settings.templates_dir.resolve()))
        file = file or settings.templates_dir / name
        raise RenderError(f"template error: {exc.message or exc}", file=file, line=line) \
            from None


def _template_frame(exc: BaseException, folder: str) -> tuple[str | None, int | None]:
    """(template file, line) of the innermost template frame of a runtime error: Jinja
    rewrites tracebacks so that frames of compiled templates name the template file."""
    found: tuple[str | None, int | None] = (None, None)
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.startswith(folder + os.sep):
            found = (name, tb.tb_lineno)
        tb = tb.tb_next
    return found


def render_mjml(issue: Issue, settings: Settings) -> str:
    """The MJML document of the issue (before mjml-python)."""
    return _render_template(HTML_TEMPLATE, settings, context(issue, settings))


def mjml_to_html(source: str) -> str:
    """mjml-python with no remote fonts (nothing may be fetched when the email is opened from
    an unknown sender, and Google Fonts would be). Parse errors name the line."""
    try:
        return mjml2html(source, fonts={})
    except ValueError as exc:
        raise RenderError(f"MJML error: {_locate(str(exc), source)}",
                          file=HTML_TEMPLATE) from None


def _locate(message: str, source: str) -> str:
    """mjml-python reports a byte offset ("... at position 1234"); add the line of the MJML."""
    match = re.search(r"(\d+)", message)
    if not match:
        return message
    offset = int(match.group(1))
    prefix = source.encode("utf-8")[:offset].decode("utf-8", "ignore")
    line = prefix.count("\n") + 1
    text = source.splitlines()[line - 1].strip() if line <= source.count("\n") + 1 else ""
    return f"{message} (line {line} of the rendered MJML: {text[:80]!r})"


def render_text(issue: Issue, settings: Settings) -> str:
    """The text/plain part."""
    text = _render_template(TEXT_TEMPLATE, settings, context(issue, settings))
    # collapse runs of blank lines a template's optional blocks may leave, end with a newline
    return re.sub(r"\n{4,}", "\n\n\n", text).strip("\n") + "\n"


def render_issue(issue: Issue, settings: Settings, *, inline: bool = True) -> Rendered:
    """Render one issue to its HTML (CSS inlined unless `inline=False`) and plain text."""
    issue = issue.model_copy(update={
        "events": [event.localized(settings.timezone) for event in issue.events]})
    shown, shown_settings, sources = _mark_local_images(issue, settings)
    html = mjml_to_html(render_mjml(shown, shown_settings))
    html, assets = _publish_local_images(html, sources, settings)
    if inline:
        html = inline_css(html)
    return Rendered(
        slug=issue.slug,
        subject=issue.subject,
        preheader=issue.preheader,
        html=html,
        text=render_text(shown, shown_settings),
        issue=issue,
        assets=assets,
    )


# A local picture's src while the email is rendered: its display width is only known from the
# <img> MJML writes, and the published name depends on that width.
_LOCAL_MARK = "https://local-picture.invalid/"
_LOCAL_IMG = re.compile(r"<img\b[^>]*>", re.I)


def _mark_local_images(issue: Issue, settings: Settings) -> tuple[Issue, Settings, list[Path]]:
    sources: list[Path] = []

    def mark(src: str) -> str:
        sources.append(Path(src))
        return f"{_LOCAL_MARK}{len(sources) - 1}"

    featured = [
        story.model_copy(update={"image": story.image.model_copy(
            update={"src": mark(story.image.src)})})
        if story.image is not None and story.image.is_local else story
        for story in issue.featured
    ]
    logo = settings.theme.logo
    if logo is not None and is_local(logo.src):
        theme = dataclasses.replace(settings.theme, logo=dataclasses.replace(
            logo, src=mark(logo.src)))
        settings = dataclasses.replace(settings, theme=theme)
    if not sources:
        return issue, settings, sources
    return issue.model_copy(update={"featured": featured}), settings, sources


def _publish_local_images(html: str, sources: list[Path],
                          settings: Settings) -> tuple[str, tuple[Asset, ...]]:
    """Each marked <img>: its picture processed for the width it is shown at, its src the
    picture's public address (links.assets + name)."""
    if not sources:
        return html, ()
    base = settings.assets_url
    if not base:
        raise RenderError("a local picture needs a public address: set [links] assets (or "
                          "archive) in newsletter.toml", field="links.assets")
    cache = default_cache(settings.root)
    assets: dict[str, Asset] = {}

    def publish(match: re.Match) -> str:
        tag = match.group(0)
        found = re.search(rf'src="{re.escape(_LOCAL_MARK)}(\d+)"', tag)
        if not found:
            return tag
        width = re.search(r'\bwidth="(\d+)', tag)
        source = sources[int(found.group(1))]
        asset = prepare_image(source, int(width.group(1)) if width else 600, cache)
        assets[asset.name] = asset
        return tag.replace(found.group(0), f'src="{base}{asset.name}"')

    html = _LOCAL_IMG.sub(publish, html)
    return html, tuple(assets.values())

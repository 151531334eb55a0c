"""The one Jinja environment factory of the project, and the filters every template can use.

`environment(settings, kind)` gives the environment for the email ("email": `email.mjml.j2`,
`email.txt.j2`), the pages of `newsletter serve` ("web") or the static archive ("archive").
Each looks in the project's `templates/` folder first (users may edit or add templates there),
then in the package's defaults (`newsletter/templates/`, package data, so an installed wheel
works without a project `templates/` folder): a file of the same name overrides the default.

Autoescaping is on for everything but plain-text templates (`*.txt`, `*.txt.j2`), so a title
such as `Q&A: <Newcomers>` reaches MJML/HTML as text and can inject nothing. StrictUndefined
turns a typo in a template into an error instead of an empty string.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemBytecodeCache,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    pass_context,
)
from jinja2.loaders import split_template_path
from markupsafe import Markup, escape

from newsletter.compose.markdown import render_html
from newsletter.compose.plaintext import WIDTH, markdown_text, underline, wrap
from newsletter.compose.tracking import track_url
from newsletter.config import Settings

Kind = Literal["email", "web", "archive", "report"]

# The package's default templates (package data; read with importlib.resources).
DEFAULT_TEMPLATES = resources.files("newsletter").joinpath("templates")


@dataclass(frozen=True)
class _KindOptions:
    folder: str  # inside templates/ (the project's and the package's)
    keep_trailing_newline: bool
    auto_reload: bool


_KINDS: dict[str, _KindOptions] = {
    # The email: the preview re-renders when a template changes.
    "email": _KindOptions("", keep_trailing_newline=True, auto_reload=True),
    # Pages of `newsletter serve`: read once; restart serve after editing them.
    "web": _KindOptions("web", keep_trailing_newline=False, auto_reload=False),
    "archive": _KindOptions("archive", keep_trailing_newline=False, auto_reload=True),
    # `newsletter report --html`.
    "report": _KindOptions("report", keep_trailing_newline=False, auto_reload=False),
}


def shorten(text: str | None, limit: int = 160, ellipsis: str = "…") -> str:
    """`text` cut at the last word boundary before `limit` characters, with an ellipsis; short
    texts come back unchanged (whitespace runs collapsed)."""
    if not text:
        return ""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ellipsis) + 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    else:  # one very long word: cut inside it rather than return almost nothing
        cut = cut[: limit - len(ellipsis)]
    return cut.rstrip(" ,;:.-–—") + ellipsis


def format_date(value: dt.date | dt.datetime | None) -> str:
    """`May 18, 2011`; with the time when there is one: `June 14, 2011, 2:00 PM`."""
    if value is None:
        return ""
    text = f"{value:%B} {value.day}, {value.year}"
    if isinstance(value, dt.datetime):
        hour = value.hour % 12 or 12
        text += f", {hour}:{value.minute:02d} {'AM' if value.hour < 12 else 'PM'}"
        if value.tzinfo is not None:
            text += f" {value.tzname() or ''}".rstrip()
    return text


def nl2br(text: str | None) -> Markup:
    """Escaped text with its line breaks as `<br>` (postal addresses)."""
    if not text:
        return Markup("")
    return Markup("<br>").join(escape(line) for line in text.strip().splitlines())


def hostname(url: str | None) -> str:
    """`https://www.example.org/path` -> `www.example.org` (link text for a web site)."""
    return urlsplit(url).hostname or "" if url else ""


def _autoescape(name: str | None) -> bool:
    if name is None:
        return True
    base = re.sub(r"\.(j2|jinja2?|tmpl)$", "", name.lower())
    return not base.endswith((".txt", ".text"))


@pass_context
def _track_filter(context, url: str | None) -> str:
    if not url:
        return ""
    return track_url(url, context.get("utm") or {})


@pass_context
def _markdown_filter(context, source: str | None) -> Markup:
    """`{{ story.body|markdown }}`: HTML; links get the issue's UTM parameters."""
    if not source:
        return Markup("")
    return Markup(render_html(source, context.get("utm")))


@pass_context
def _md_text_filter(context, source: str | None, indent: str = "") -> str:
    """`{{ story.body|md_text }}`: the same Markdown as wrapped plain text, same links."""
    if not source:
        return ""
    return markdown_text(source, context.get("utm"), indent=indent)


def _wrap_filter(text: str | None, width: int = WIDTH, indent: str = "",
                 first: str | None = None) -> str:
    """`{{ story.summary|wrap(indent="  ") }}`."""
    if not text:
        return ""
    return "\n".join(wrap(text, width, indent if first is None else first, indent))


FILTERS = {
    "track": _track_filter,
    "shorten": shorten,
    "date": format_date,
    "nl2br": nl2br,
    "hostname": hostname,
    "markdown": _markdown_filter,
    "md_text": _md_text_filter,
    "wrap": _wrap_filter,
    "underline": underline,
}


def _bytecode_cache() -> FileSystemBytecodeCache | None:
    try:
        return FileSystemBytecodeCache()  # a private folder in the temp dir, per user
    except (OSError, RuntimeError):  # no safe temp folder: compile every time
        return None


class _ProjectFirstLoader(BaseLoader):
    """The project's folder first, then the package's defaults. A default counts as up to date
    only while the project has no file of that name, so an override saved while the preview
    runs is used on the next render (and a deleted one falls back to the default)."""

    def __init__(self, project: str, package: str) -> None:
        self.project = project
        self._choice = ChoiceLoader([FileSystemLoader(project),
                                     PackageLoader("newsletter", package)])

    def get_source(self, environment: Environment, template: str
                   ) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = self._choice.get_source(environment, template)
        own = os.path.join(self.project, *split_template_path(template))
        if filename == own:
            return source, filename, uptodate

        def still_default() -> bool:
            return not os.path.exists(own) and (uptodate is None or uptodate())

        return source, filename, still_default

    def list_templates(self) -> list[str]:
        return self._choice.list_templates()


def _loader(templates_dir: str, folder: str) -> BaseLoader:
    project = os.path.join(templates_dir, folder) if folder else templates_dir
    package = f"templates/{folder}" if folder else "templates"
    return _ProjectFirstLoader(project, package)


@lru_cache(maxsize=16)
def _environment(templates_dir: str, kind: str) -> Environment:
    options = _KINDS[kind]
    env = Environment(
        loader=_loader(templates_dir, options.folder),
        # Compiled templates are kept between runs (in the user's temp folder, keyed by the
        # template's path and checked against its source): compiling the email templates
        # costs ~30 ms of every `newsletter build`, loading them ~1 ms.
        bytecode_cache=_bytecode_cache(),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=options.keep_trailing_newline,
        auto_reload=options.auto_reload,
    )
    env.filters.update(FILTERS)
    return env


def environment(settings: Settings | None, kind: Kind = "email") -> Environment:
    """The Jinja environment for the email, the web pages, the archive or the report of this
    project (None: the package's defaults only), built once per process for each templates
    folder and kind."""
    if kind not in _KINDS:
        raise ValueError(f"unknown template kind {kind!r} (expected one of: {', '.join(_KINDS)})")
    folder = settings.templates_dir.resolve() if settings is not None else Path("/nonexistent")
    return _environment(str(folder), kind)


def forget_environments() -> None:
    """Drop the environments built so far (serve's pages are read once per environment)."""
    _environment.cache_clear()

"""The one Jinja environment of the project, and the filters every template can use.

Templates live in the project's `templates/` folder (users may edit them). Autoescaping is on
for everything but plain-text templates (`*.txt`, `*.txt.j2`), so a title such as
`Q&A: <Newcomers>` reaches MJML/HTML as text and can inject nothing. StrictUndefined turns a
typo in a template into an error instead of an empty string.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, pass_context
from markupsafe import Markup, escape

# Links that must never carry tracking parameters: the per-recipient unsubscribe placeholder
# (premailer and personalise expect it verbatim) and anything that is not a web address.
_TRACKABLE = ("http://", "https://")

DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def track_url(url: str, params: Mapping[str, str]) -> str:
    """`url` with the UTM `params` added. An existing query string and fragment are kept, and a
    parameter the URL already sets is not overridden (the author chose it on purpose)."""
    if not params or not url.lower().startswith(_TRACKABLE) or "{{" in url:
        return url
    parts = urlsplit(url)
    existing = parse_qsl(parts.query, keep_blank_values=True)
    have = {key for key, _ in existing}
    extra = [(key, value) for key, value in params.items() if key not in have]
    if not extra:
        return url
    query = parts.query + ("&" if parts.query else "") + urlencode(extra)
    path = parts.path or "/"  # https://example.org?x=1 -> https://example.org/?x=1
    return urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))


def utm_params(utm: Mapping[str, str], slug: str) -> dict[str, str]:
    """The `[tracking]` settings with `{slug}` replaced by this issue's slug."""
    return {key: str(value).replace("{slug}", slug) for key, value in utm.items() if value}


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


def _bytecode_cache():
    from jinja2 import FileSystemBytecodeCache

    try:
        return FileSystemBytecodeCache()  # a private folder in the temp dir, per user
    except (OSError, RuntimeError):  # no safe temp folder: compile every time
        return None


@lru_cache(maxsize=8)
def _environment(templates_dir: str) -> Environment:
    env = Environment(
        # The project's templates/ first, then the package's defaults: a file of the same name
        # in the project overrides the default.
        loader=ChoiceLoader([FileSystemLoader(templates_dir),
                             FileSystemLoader(str(DEFAULT_TEMPLATES))]),
        # Compiled templates are kept between runs (in the user's temp folder, keyed by the
        # template's path and checked against its source): compiling the email templates
        # costs ~30 ms of every `newsletter build`, loading them ~1 ms.
        bytecode_cache=_bytecode_cache(),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=True,  # the preview re-renders when a template changes
    )
    env.filters.update(
        track=_track_filter,
        shorten=shorten,
        date=format_date,
        nl2br=nl2br,
        hostname=hostname,
    )
    # Filters that need the Markdown/plain-text machinery are imported lazily by their modules
    # and registered here so templates can use them.
    from newsletter.compose import plaintext
    from newsletter.compose.markdown import markdown_filter

    env.filters.update(
        markdown=markdown_filter,
        md_text=plaintext.markdown_text_filter,
        wrap=plaintext.wrap_filter,
        underline=plaintext.underline,
    )
    return env


def get_env(templates_dir: str | Path) -> Environment:
    """The environment for a templates folder, built once per process."""
    return _environment(str(Path(templates_dir).resolve()))

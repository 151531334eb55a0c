"""Settings: `newsletter.toml` (what is the same for every issue) plus the environment (secrets).

Lookup order for every environment value: the process environment, then `.env` beside
`newsletter.toml`, then the documented default. A missing required value raises ConfigError
naming exactly what to set.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.errors import ConfigError

CONFIG_NAME = "newsletter.toml"


@dataclass(frozen=True)
class Logo:
    src: str
    alt: str
    width: int = 200


@dataclass(frozen=True)
class Theme:
    """Colours of the email. Contrast is checked by `newsletter check`."""

    brand: str = "#0b5394"  # header band, buttons, headings
    text: str = "#222222"
    muted: str = "#555555"
    background: str = "#f2f2f2"
    card: str = "#ffffff"
    link: str = "#0b5394"
    button_text: str = "#ffffff"
    font: str = "Helvetica, Arial, sans-serif"
    logo: Logo | None = None


@dataclass(frozen=True)
class Settings:
    root: Path
    name: str
    from_email: str
    from_name: str
    reply_to: str | None
    reviewers: tuple[str, ...]
    postal_address: str
    why: str
    language: str = "en"
    list_id: str = "newsletter"
    website: str | None = None
    archive_url: str | None = None
    # "{slug}" is replaced by the issue slug, e.g. https://example.org/archive/{slug}.html
    view_online_url: str | None = None
    # Base URL where `newsletter serve` is reachable (unsubscribe, confirm, webhooks).
    public_url: str | None = None
    # The public "subscribe" page (the archive links to it); default: <public_url>/subscribe.
    subscribe_url: str | None = None
    utm: Mapping[str, str] = field(default_factory=dict)
    theme: Theme = field(default_factory=Theme)
    rate_limit: float = 0.0  # messages per second, 0 = as fast as the provider takes them
    batch_size: int = 1000
    env: Mapping[str, str] = field(default_factory=dict)

    # -- environment -------------------------------------------------------------------
    def getenv(self, name: str, default: str | None = None) -> str | None:
        value = self.env.get(name)
        return value if value not in (None, "") else default

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def issues_dir(self) -> Path:
        return self.root / "issues"

    @property
    def outbox(self) -> Path:
        return self._path("NEWSLETTER_OUTBOX", "outbox")

    @property
    def db_path(self) -> Path:
        return self._path("NEWSLETTER_DB", "newsletter.db")

    @property
    def secret(self) -> str:
        value = self.getenv("NEWSLETTER_SECRET")
        if not value:
            raise ConfigError(
                "not set: put a long random string in NEWSLETTER_SECRET (environment or .env)",
                field="NEWSLETTER_SECRET",
            )
        return value

    @property
    def secrets(self) -> tuple[str, ...]:
        """The current secret first, then the previous one during a rotation."""
        previous = self.getenv("NEWSLETTER_SECRET_PREVIOUS")
        return (self.secret, previous) if previous else (self.secret,)

    def view_online_for(self, slug: str) -> str | None:
        return self.view_online_url.replace("{slug}", slug) if self.view_online_url else None

    def _path(self, var: str, default: str) -> Path:
        path = Path(self.getenv(var, default) or default).expanduser()
        return path if path.is_absolute() else self.root / path


def env_seconds(getenv, name: str, default: float) -> float:
    """A timeout from the environment: a finite number of seconds above 0 (sockets refuse 0,
    negatives and nan), or ConfigError naming the variable."""
    try:
        value = float(getenv(name) or default)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ConfigError("must be a number of seconds greater than 0", field=name)
    return value


def find_config(start: Path | None = None) -> Path:
    """`NEWSLETTER_CONFIG` if set, else the nearest newsletter.toml from `start` upwards."""
    explicit = os.environ.get("NEWSLETTER_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError("file not found (set by NEWSLETTER_CONFIG)", file=path)
        return path
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"{CONFIG_NAME} not found in {here} or any parent folder "
        "(run from the project folder or set NEWSLETTER_CONFIG)"
    )


def read_env(root: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment over `.env` in the project root."""
    merged: dict[str, str] = {}
    dotenv = root / ".env"
    if dotenv.is_file():
        from dotenv import dotenv_values

        try:
            values = dotenv_values(dotenv, encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError("not UTF-8 text", file=dotenv) from None
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror or exc}", file=dotenv) from None
        merged.update({k: v for k, v in values.items() if v is not None})
    merged.update(os.environ if environ is None else environ)
    return merged


def load_settings(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    path = Path(path) if path else find_config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("file not found", file=path) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=path) from None
    except tomllib.TOMLDecodeError as exc:
        # "Invalid value (at line 3, column 5)": put the line where the contract wants it
        where = re.search(r" \(at line (\d+), column \d+\)$", str(exc))
        line = int(where.group(1)) if where else None
        raise ConfigError(f"not valid TOML: {exc}", file=path, line=line) from None
    root = path.resolve().parent
    return settings_from_dict(data, root=root, env=read_env(root, environ), file=path)


_TOP = {"newsletter", "sender", "links", "tracking", "theme", "sending"}
_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")  # BCP 47: en, fr-CA, zh-Hant
_LIST_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")  # List-Id: <id.domain>
# A plain address (no display name): it goes into From/Reply-To headers as it is.
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]+")


def settings_from_dict(
    data: Mapping, *, root: Path, env: Mapping[str, str], file: Path | str = CONFIG_NAME
) -> Settings:
    def fail(message: str, key: str) -> ConfigError:
        return ConfigError(message, file=file, field=key)

    for key in data:
        if key not in _TOP:
            raise fail(f"unknown section (expected one of: {', '.join(sorted(_TOP))})", key)

    def section(name: str) -> Mapping:
        value = data.get(name, {})
        if not isinstance(value, Mapping):
            raise fail("must be a table", name)
        return value

    def text(sec: str, key: str, *, required: bool = False, default: str | None = None):
        value = section(sec).get(key, default)
        if value is None:
            if required:
                raise fail("required", f"{sec}.{key}")
            return None
        if not isinstance(value, str) or (required and not value.strip()):
            raise fail("must be a non-empty string", f"{sec}.{key}")
        if key not in ("postal_address", "why") and (
                any(c in value for c in "\r\n") or value.splitlines() != [value]):
            raise fail("must be one line (no CR, LF or other line separator)", f"{sec}.{key}")
        return value

    def matching(pattern: re.Pattern, sec: str, key: str, default: str, example: str) -> str:
        value = text(sec, key, default=default)
        if not pattern.fullmatch(value):
            raise fail(f"must look like {example}, not {value!r}", f"{sec}.{key}")
        return value

    def address(sec: str, key: str, *, required: bool = False) -> str | None:
        value = text(sec, key, required=required)
        if value is not None and not _ADDRESS.fullmatch(value.strip()):
            raise fail(f"{value!r} is not a plain email address such as news@example.org "
                       "(the sender's name goes in sender.from_name)", f"{sec}.{key}")
        if value is not None and not value.rpartition("@")[0].isascii():
            # no provider here speaks SMTPUTF8: every send would fail
            raise fail(f"{value!r}: the part before the @ must be ASCII", f"{sec}.{key}")
        return value.strip() if value is not None else None

    def url(sec: str, key: str) -> str | None:
        value = text(sec, key)
        if value is not None and not _web_url(value):
            raise fail(f"must be an http:// or https:// address, not {value!r}", f"{sec}.{key}")
        return value

    reviewers = section("sender").get("reviewers", [])
    if not isinstance(reviewers, list) or not all(isinstance(r, str) for r in reviewers):
        raise fail("must be a list of email addresses", "sender.reviewers")

    tracking = section("tracking")
    if not all(isinstance(v, str) for v in tracking.values()):
        raise fail("values must be strings", "tracking")

    theme_data = dict(section("theme"))
    logo = theme_data.pop("logo", None)
    if logo is not None:
        if not isinstance(logo, Mapping) or not logo.get("src") or not logo.get("alt"):
            raise fail("needs src and alt (alt text is required for every image)", "theme.logo")
        width = logo.get("width", 200)
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= 1200:
            raise fail("must be a whole number of pixels from 1 to 1200", "theme.logo.width")
        if not isinstance(logo["src"], str) or not _web_url(logo["src"]):
            raise fail(f"must be an http:// or https:// address, not {logo['src']!r}",
                       "theme.logo.src")
        if not isinstance(logo["alt"], str) or any(c in logo["alt"] for c in "\r\n"):
            raise fail("must be one line of text", "theme.logo.alt")
        logo = Logo(src=logo["src"], alt=logo["alt"], width=width)
    allowed = set(Theme.__dataclass_fields__) - {"logo"}
    for key, value in theme_data.items():
        if key not in allowed:
            raise fail(f"unknown key (expected one of: {', '.join(sorted(allowed))})",
                       f"theme.{key}")
        if key == "font":
            if not isinstance(value, str) or not value.strip() or any(c in value for c in
                                                                       "\r\n;{}<>"):
                raise fail("must be a CSS font list such as 'Helvetica, Arial, sans-serif'",
                           "theme.font")
        elif not isinstance(value, str) or not _COLOUR.fullmatch(value):
            raise fail(f"must be a colour such as \"#1d5b79\", not {value!r}", f"theme.{key}")
    theme = Theme(logo=logo, **theme_data)

    sending = section("sending")
    try:
        rate_limit = float(sending.get("rate_limit", 0))
        batch_size = int(sending.get("batch_size", 1000))
    except (TypeError, ValueError):
        raise fail("rate_limit and batch_size must be numbers", "sending") from None
    if not math.isfinite(rate_limit):
        raise fail("must be a number of messages per second (0: no limit)",
                   "sending.rate_limit")
    if not 1 <= batch_size <= 1000:
        raise fail("must be between 1 and 1000", "sending.batch_size")
    if rate_limit < 0:
        raise fail("must be 0 (no limit) or more", "sending.rate_limit")

    return Settings(
        root=root,
        name=text("newsletter", "name", required=True),
        language=matching(_LANGUAGE, "newsletter", "language", "en",
                          "a language tag such as 'en' or 'fr-CA'"),
        list_id=matching(_LIST_ID, "newsletter", "list_id", "newsletter",
                         "'cities-of-migration' (letters, digits, '.', '_', '-')"),
        website=url("newsletter", "website"),
        postal_address=text("newsletter", "postal_address", required=True),
        why=text("newsletter", "why", required=True),
        from_email=address("sender", "from_email", required=True),
        from_name=text("sender", "from_name", default=None)
        or text("newsletter", "name", required=True),
        reply_to=address("sender", "reply_to"),
        reviewers=tuple(reviewers),
        archive_url=url("links", "archive"),
        view_online_url=url("links", "view_online"),
        public_url=_ascii_url(url("links", "public"), fail) or None,
        subscribe_url=url("links", "subscribe")
        or ((url("links", "public") or "").rstrip("/") + "/subscribe"
            if url("links", "public") else None),
        utm=dict(tracking),
        theme=theme,
        rate_limit=rate_limit,
        batch_size=batch_size,
        env=env,
    )


def _web_url(value: str) -> bool:
    """An absolute http(s) address with a host and no spaces (links in every email)."""
    from urllib.parse import urlsplit

    if any(c.isspace() for c in value) or not value.lower().startswith(("http://", "https://")):
        return False
    try:
        return bool(urlsplit(value).hostname)
    except ValueError:
        return False


def _ascii_url(value: str | None, fail) -> str | None:
    """links.public goes into the List-Unsubscribe header of every message, which must be
    ASCII: an internationalised host name is written in its IDNA (xn--) form."""
    if not value:
        return None
    value = value.rstrip("/")
    if value.isascii():
        return value
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(value)
    try:
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except UnicodeError:
        raise fail("the host name is not a valid internationalised domain name",
                   "links.public") from None
    netloc = host + (f":{parts.port}" if parts.port else "")
    value = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    if not value.isascii():
        raise fail("must be ASCII after the host name (percent-encode other characters)",
                   "links.public")
    return value

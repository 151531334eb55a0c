"""Settings: `newsletter.toml` (what is the same for every issue) plus the environment (secrets).

Lookup order for every environment value: the process environment, then `.env` beside
`newsletter.toml`, then the documented default. A missing required value raises ConfigError
naming exactly what to set.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from newsletter.compose.images import check_image_file, is_local
from newsletter.compose.issue import zone
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
    # IANA zone of event times (and `send --at` times) written without an offset.
    timezone: str = "UTC"
    # Public base URL of local pictures; default: links.archive + "images/".
    assets_url: str | None = None

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
    def db_path(self) -> Path | str:
        """The SQLite file, or a `postgresql://` URL as given (see `store.describe` for a
        version fit to print)."""
        value = self.getenv("NEWSLETTER_DB", "") or ""
        if value.startswith(("postgresql://", "postgres://")):
            return value
        return self._path("NEWSLETTER_DB", "newsletter.db")

    def require_secret(self) -> str:
        """The key that signs links, or ConfigError naming NEWSLETTER_SECRET. Commands that
        sign links call it first, so a missing key stops them before any work starts."""
        value = self.getenv("NEWSLETTER_SECRET")
        if not value:
            raise ConfigError(
                "not set: `newsletter init` writes one into .env, or put the output of "
                "python3 -c \"import secrets; print(secrets.token_urlsafe(32))\" in "
                "NEWSLETTER_SECRET (environment or .env)",
                field="NEWSLETTER_SECRET",
            )
        return value

    @property
    def secret(self) -> str:
        return self.require_secret()

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
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
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
    return settings_from_dict(data, root=root, env=read_env(root, environ), file=path,
                              source=text)


# -- validation of newsletter.toml ------------------------------------------------------------
# One pydantic model per table. Each field's type carries its own check and message (a plain
# validator, so pydantic's generic wording never reaches the user); adding a setting is one line
# in its table's model.

_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")  # BCP 47: en, fr-CA, zh-Hant
_LIST_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")  # List-Id: <id.domain>
# A plain address (no display name): it goes into From/Reply-To headers as it is.
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]+")


def _bad(message: str) -> PydanticCustomError:
    return PydanticCustomError("setting", message)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad("must be a non-empty string")
    return value


def _line(value: object) -> str:
    """Header-bound values: one line (Python's email package breaks header lines at every
    str.splitlines() boundary, U+2028 included)."""
    value = _text(value)
    if any(c in value for c in "\r\n") or value.splitlines() != [value]:
        raise _bad("must be one line (no CR, LF or other line separator)")
    return value


def _matching(pattern: re.Pattern, example: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        value = _line(value)
        if not pattern.fullmatch(value):
            raise _bad(f"must look like {example}, not {value!r}")
        return value
    return check


def _address(value: object) -> str:
    value = _line(value).strip()
    if not _ADDRESS.fullmatch(value):
        raise _bad(f"{value!r} is not a plain email address such as news@example.org "
                   "(the sender's name goes in sender.from_name)")
    if not value.rpartition("@")[0].isascii():
        # no provider here speaks SMTPUTF8: every send would fail
        raise _bad(f"{value!r}: the part before the @ must be ASCII")
    return value


def _web_url(value: str) -> bool:
    """An absolute http(s) address with a host and no spaces (links in every email)."""
    if any(c.isspace() for c in value) or not value.lower().startswith(("http://", "https://")):
        return False
    try:
        return bool(urlsplit(value).hostname)
    except ValueError:
        return False


def _url(value: object) -> str:
    value = _line(value)
    if not _web_url(value):
        raise _bad(f"must be an http:// or https:// address, not {value!r}")
    return value


def _ascii_url(value: object) -> str:
    """links.public goes into the List-Unsubscribe header of every message, which must be
    ASCII: an internationalised host name is written in its IDNA (xn--) form."""
    value = _url(value).rstrip("/")
    if value.isascii():
        return value
    parts = urlsplit(value)
    try:
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except UnicodeError:
        raise _bad("the host name is not a valid internationalised domain name") from None
    netloc = host + (f":{parts.port}" if parts.port else "")
    value = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    if not value.isascii():
        raise _bad("must be ASCII after the host name (percent-encode other characters)")
    return value


def _zone(value: object) -> str:
    value = _line(value).strip()
    try:
        zone(value)
    except ValueError as exc:
        raise _bad(str(exc)) from None
    return value


def _picture(value: object) -> str:
    """A web address, or a picture file relative to newsletter.toml (checked once the
    project folder is known)."""
    value = _line(value).strip()
    return value if is_local(value) else _url(value)


def _addresses(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise _bad("must be a list of email addresses")
    return tuple(value)


def _strings(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _bad("must be a table")
    if not all(isinstance(v, str) for v in value.values()):
        raise _bad("values must be strings")
    return dict(value)


def _colour(value: object) -> str:
    if not isinstance(value, str) or not _COLOUR.fullmatch(value):
        raise _bad(f"must be a colour such as \"#1d5b79\", not {value!r}")
    return value


def _font(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or any(c in value for c in "\r\n;{}<>"):
        raise _bad("must be a CSS font list such as 'Helvetica, Arial, sans-serif'")
    return value


def _whole(low: int, high: int, message: str) -> Callable[[object], int]:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _bad(message)
        return value
    return check


def _rate(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value):
        raise _bad("must be a number of messages per second (0: no limit)")
    if value < 0:
        raise _bad("must be 0 (no limit) or more")
    return float(value)


Text = Annotated[str, PlainValidator(_text)]
Line = Annotated[str, PlainValidator(_line)]
Address = Annotated[str, PlainValidator(_address)]
Url = Annotated[str, PlainValidator(_url)]
AsciiUrl = Annotated[str, PlainValidator(_ascii_url)]
Colour = Annotated[str, PlainValidator(_colour)]
Language = Annotated[str, PlainValidator(
    _matching(_LANGUAGE, "a language tag such as 'en' or 'fr-CA'"))]
ListId = Annotated[str, PlainValidator(
    _matching(_LIST_ID, "'cities-of-migration' (letters, digits, '.', '_', '-')"))]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _NewsletterTable(_Table):
    name: Line
    language: Language = "en"
    list_id: ListId = "newsletter"
    website: Url | None = None
    postal_address: Text
    why: Text
    timezone: Annotated[str, PlainValidator(_zone)] = "UTC"  # IANA name


class _SenderTable(_Table):
    from_email: Address
    from_name: Annotated[str | None, PlainValidator(
        lambda value: _line(value) if value != "" else None)] = None  # default: newsletter.name
    reply_to: Address | None = None
    reviewers: Annotated[tuple[str, ...], PlainValidator(_addresses)] = ()


class _LinksTable(_Table):
    archive: Url | None = None
    view_online: Url | None = None  # "{slug}" becomes the issue's slug
    public: AsciiUrl | None = None
    subscribe: Url | None = None  # default: <public>/subscribe
    assets: Url | None = None  # local pictures; default: <archive>images/


class _LogoTable(_Table):
    src: Annotated[str, PlainValidator(_picture)]
    alt: Annotated[str, PlainValidator(_matching(re.compile(r"[^\r\n]+"), "one line of text"))]
    width: Annotated[int, PlainValidator(
        _whole(1, 1200, "must be a whole number of pixels from 1 to 1200"))] = 200

    @model_validator(mode="before")
    @classmethod
    def _needs_src_and_alt(cls, data: object) -> object:
        if not isinstance(data, Mapping) or not data.get("src") or not data.get("alt"):
            raise _bad("needs src and alt (alt text is required for every image)")
        return data


class _ThemeTable(_Table):
    brand: Colour = Theme.brand
    text: Colour = Theme.text
    muted: Colour = Theme.muted
    background: Colour = Theme.background
    card: Colour = Theme.card
    link: Colour = Theme.link
    button_text: Colour = Theme.button_text
    font: Annotated[str, PlainValidator(_font)] = Theme.font
    logo: _LogoTable | None = None


class _SendingTable(_Table):
    rate_limit: Annotated[float, PlainValidator(_rate)] = 0.0
    batch_size: Annotated[int, PlainValidator(
        _whole(1, 1000, "must be between 1 and 1000"))] = 1000


class SettingsFile(_Table):
    """newsletter.toml, table by table."""

    newsletter: _NewsletterTable
    sender: _SenderTable
    links: _LinksTable = _LinksTable()
    tracking: Annotated[dict[str, str], PlainValidator(_strings)] = {}
    theme: _ThemeTable = _ThemeTable()
    sending: _SendingTable = _SendingTable()


def _message(error: Mapping, model: type[BaseModel]) -> str:
    """One pydantic error as the user reads it."""
    kind = error["type"]
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        owner: type[BaseModel] | None = model
        for part in error["loc"][:-1]:  # the table the unknown key sits in
            owner = _submodel(owner, part)
        known = sorted(owner.model_fields) if owner else []
        what = "section" if len(error["loc"]) == 1 else "key"
        close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {what} (expected one of: {', '.join(known)}){hint}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a table"
    return str(error["msg"])


def _submodel(model: type[BaseModel] | None, name: object) -> type[BaseModel] | None:
    if model is None or name not in model.model_fields:
        return None
    for candidate in (model.model_fields[name].annotation, *getattr(
            model.model_fields[name].annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _line_of(source: str, key: tuple[str, ...]) -> int | None:
    """The line of `key` (or of the deepest table or key on its way) in a TOML text."""
    table: tuple[str, ...] = ()
    best, depth = None, 0
    for number, raw in enumerate(source.splitlines(), 1):
        line = raw.strip()
        header = re.match(r"\[\s*([^\[\]]+?)\s*\]", line)
        if header:
            table = tuple(p.strip().strip("\"'") for p in header.group(1).split("."))
            found = table
        else:
            assignment = re.match(r"""("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""", line)
            if not assignment:
                continue
            found = (*table, assignment.group(1).strip("\"'"))
        if len(found) > depth and found == key[:len(found)]:
            best, depth = number, len(found)
    return best


def validate_settings_file(data: Mapping, source: str = "",
                           file: Path | str = CONFIG_NAME) -> SettingsFile:
    """newsletter.toml's parsed `data` checked table by table; the first problem is raised as
    ConfigError naming the file, the line (found in `source`, the TOML text) and the key."""
    try:
        return SettingsFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        key = tuple(str(part) for part in error["loc"])
        raise ConfigError(_message(error, SettingsFile), file=file,
                          line=_line_of(source, key), field=".".join(key)) from None


def settings_from_dict(
    data: Mapping, *, root: Path, env: Mapping[str, str], file: Path | str = CONFIG_NAME,
    source: str = "",
) -> Settings:
    """Settings from newsletter.toml's parsed `data` (its text in `source` for line numbers)
    and the environment `env`."""
    toml = validate_settings_file(data, source, file)
    news, sender, links, theme = toml.newsletter, toml.sender, toml.links, toml.theme
    logo = theme.logo
    if logo is not None and is_local(logo.src):
        # A picture file beside newsletter.toml: resized and published like an issue's.
        src = (root / Path(logo.src).expanduser()).resolve()
        why = check_image_file(src)
        if why is not None:
            raise ConfigError(f"{why} (a path is relative to newsletter.toml's folder)",
                              file=file, line=_line_of(source, ("theme", "logo")),
                              field="theme.logo.src")
        logo = logo.model_copy(update={"src": str(src)})
    assets = links.assets or (links.archive.rstrip("/") + "/images/" if links.archive else None)
    return Settings(
        root=root,
        name=news.name,
        language=news.language,
        list_id=news.list_id,
        website=news.website,
        postal_address=news.postal_address,
        why=news.why,
        from_email=sender.from_email,
        from_name=sender.from_name or news.name,
        reply_to=sender.reply_to,
        reviewers=sender.reviewers,
        archive_url=links.archive,
        view_online_url=links.view_online,
        public_url=links.public,
        subscribe_url=links.subscribe or (
            str(data["links"]["public"]).rstrip("/") + "/subscribe" if links.public else None),
        utm=toml.tracking,
        theme=Theme(
            **theme.model_dump(exclude={"logo"}),
            logo=Logo(src=logo.src, alt=logo.alt, width=logo.width) if logo else None,
        ),
        rate_limit=toml.sending.rate_limit,
        batch_size=toml.sending.batch_size,
        env=env,
        timezone=news.timezone,
        assets_url=assets if assets is None or assets.endswith("/") else assets + "/",
    )

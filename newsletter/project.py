"""Starting a newsletter folder (`newsletter init`): settings, secrets, ignore rules.

    result = create_project(Path("acme-news"), Answers(name="Acme News", ...))

Writes `newsletter.toml` (commented, valid for the settings loader), `issues/`, `.env` with a
fresh NEWSLETTER_SECRET (mode 0600, created exclusively so a secret is never replaced), and a
`.gitignore` keeping `.env`, the database and the generated folders out of git; optionally a
copy of the default templates for editing. A file that exists is never overwritten: it is
reported as kept.

The placeholder answers (`Answers.placeholders()`, what `--yes` uses for what was not given)
are exact values that `newsletter check` reports as errors (`unfinished_settings`), so no
issue goes out with example.org addresses or a made-up postal address.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.config import CONFIG_NAME, settings_from_dict
from newsletter.errors import NewsletterError

DEFAULT_TEMPLATES = Path(__file__).resolve().parent / "templates"

PLACEHOLDER_FROM = "newsletter@example.org"
PLACEHOLDER_ADDRESS = "Your organisation, street address, city, postal code, country"
PLACEHOLDER_PUBLIC = "https://newsletter.example.org"

IGNORED = (".env", "newsletter.db", "newsletter.db-wal", "newsletter.db-shm", "build/",
           "outbox/", "site/", ".cache/")  # .cache/: processed local pictures


@dataclass(frozen=True)
class Answers:
    name: str
    from_email: str = PLACEHOLDER_FROM
    postal_address: str = PLACEHOLDER_ADDRESS
    public_url: str = PLACEHOLDER_PUBLIC


@dataclass
class InitResult:
    folder: Path
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def default_name(folder: Path) -> str:
    """`acme-news` -> `Acme News`: a starting point for the prompt."""
    words = re.split(r"[-_.\s]+", folder.resolve().name)
    return " ".join(w[:1].upper() + w[1:] for w in words if w) or "My Newsletter"


def list_id_for(name: str) -> str:
    """`Cities of Migration` -> `cities-of-migration` (the List-Id header wants ASCII)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:60].strip("-") or "newsletter"


def _toml_string(value: str) -> str:
    # JSON's string escapes (\" \\ \n \uXXXX) are all valid in a TOML basic string.
    return json.dumps(value, ensure_ascii=False)


def settings_text(answers: Answers) -> str:
    """The commented newsletter.toml for these answers."""
    q = _toml_string
    public = answers.public_url.rstrip("/")
    return f"""\
# Settings that are the same for every issue. Secrets never go here: they live in .env.
# `newsletter check` reports any value below that is still a placeholder of `newsletter init`.

[newsletter]
name = {q(answers.name)}
language = "en"
# Identifies the list in the List-Id header (letters, digits, '.', '_', '-').
list_id = {q(list_id_for(answers.name))}
# Your organisation's web site (linked from the footer).
# website = "https://example.org"
# Required in every message by CAN-SPAM and CASL.
postal_address = {q(answers.postal_address)}
why = {q(f"You are receiving this email because you subscribed to {answers.name}.")}

[sender]
from_email = {q(answers.from_email)}
from_name = {q(answers.name)}
# Where replies go (default: the From address).
# reply_to = "editor@example.org"
# Default recipients of `newsletter send ISSUE --test`.
reviewers = [{q(answers.from_email)}]

[links]
# Where `newsletter serve` is reachable from the internet (unsubscribe and confirmation links).
public = {q(public)}
# The "Looking for Past Issues?" link: where you publish `newsletter archive`.
# archive = "https://example.org/newsletter/"
# The "View in browser" copy of each issue; {{slug}} becomes the issue's slug (e.g. 2011-05).
# view_online = "https://example.org/newsletter/{{slug}}.html"

[tracking]
# Added to every link to a story (existing query strings are kept). {{slug}} becomes the slug.
utm_source = "newsletter"
utm_medium = "email"
utm_campaign = "{{slug}}"

[theme]
# Colours of the email ("#rrggbb"); `newsletter check` checks their contrast.
brand = "#0b5394"
text = "#222222"
link = "#0b5394"
# logo = {{ src = "https://example.org/logo.png", alt = "Your organisation", width = 200 }}

[sending]
# Messages per second; 0 means as fast as the provider accepts them.
rate_limit = 0
# Recipients per provider request (SendGrid allows at most 1000).
batch_size = 1000
"""


def env_text(secret: str) -> str:
    return f"""\
# Secrets and machine settings of this newsletter. Never commit this file (.gitignore keeps
# it out of git). Every variable can also be set in the environment, which wins.

# Signs unsubscribe and confirmation links. Keep it secret; changing it breaks the links of
# messages already sent unless the old one goes in NEWSLETTER_SECRET_PREVIOUS.
NEWSLETTER_SECRET={secret}

# How messages leave. Unset: SendGrid when SENDGRID_API_KEY is set, else SMTP when SMTP_URL
# is set, else the file provider (one .eml per message in outbox/, nothing is sent).
# NEWSLETTER_PROVIDER=
# SENDGRID_API_KEY=
# SMTP_URL=smtp://user:password@smtp.example.org:587

# Where subscribers and the send ledger live (default: newsletter.db in this folder).
# NEWSLETTER_DB=newsletter.db
"""


def gitignore_text() -> str:
    return ("# Secrets, the subscriber database and generated files stay out of git.\n"
            + "\n".join(IGNORED) + "\n")


def validate(answers: Answers) -> None:
    """ConfigError naming the field when the answers would not make valid settings."""
    import tomllib

    data = tomllib.loads(settings_text(answers))
    settings_from_dict(data, root=Path("."), env={}, file=CONFIG_NAME)


def unfinished_settings(settings) -> list[tuple[str, str]]:
    """(field, value) of settings still holding a placeholder of `newsletter init --yes`."""
    found = []
    if settings.from_email == PLACEHOLDER_FROM:
        found.append(("sender.from_email", settings.from_email))
    if settings.postal_address == PLACEHOLDER_ADDRESS:
        found.append(("newsletter.postal_address", settings.postal_address))
    if (settings.public_url or "").rstrip("/") == PLACEHOLDER_PUBLIC:
        found.append(("links.public", settings.public_url))
    return found


def create_project(folder: Path, answers: Answers, *, templates: bool = False,
                   secret: str | None = None) -> InitResult:
    """Write a newsletter folder (see the module docstring); never overwrites a file."""
    validate(answers)
    result = InitResult(folder=folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write(result, folder / CONFIG_NAME, settings_text(answers))
        _mkdir(result, folder / "issues")
        _write(result, folder / ".env", env_text(secret or secrets.token_urlsafe(32)),
               mode=0o600)
        _write(result, folder / ".gitignore", gitignore_text())
        if templates:
            _copy_templates(result, folder / "templates")
    except FileExistsError as exc:  # a folder where a file goes, or the reverse
        raise NewsletterError("a file is in the way", file=Path(exc.filename or folder)) \
            from None
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else folder
        raise NewsletterError(f"cannot write: {exc.strerror or exc}", file=where) from None
    gitignore = folder / ".gitignore"
    if gitignore in result.kept and not _ignores_env(gitignore):
        result.warnings.append(f"{gitignore} does not list .env: add it, or the secret may "
                               "be committed")
    return result


def _write(result: InitResult, path: Path, text: str, mode: int = 0o644) -> None:
    try:
        # O_EXCL: created here or not at all, even if another process races us
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        if path.is_dir():
            raise
        result.kept.append(path)
        return
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, mode)  # the umask may have taken bits away; never added any
    result.written.append(path)


def _mkdir(result: InitResult, path: Path) -> None:
    if path.is_dir():
        result.kept.append(path)
        return
    path.mkdir()
    result.written.append(path)


def _copy_templates(result: InitResult, target: Path) -> None:
    for source in sorted(DEFAULT_TEMPLATES.rglob("*")):
        if not source.is_file() or "__pycache__" in source.parts:
            continue
        path = target / source.relative_to(DEFAULT_TEMPLATES)
        if path.exists():
            result.kept.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        result.written.append(path)


def _ignores_env(gitignore: Path) -> bool:
    try:
        lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False
    return any(line.strip().lstrip("/") in (".env", ".env*", "*.env") for line in lines)

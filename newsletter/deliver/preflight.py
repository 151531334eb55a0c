"""The rules a send to every subscriber must pass, as a library: CLI, preview and scheduler.

`settings_problems(settings)` is the cheap part (no render, no database): the signing secret,
an https public address (every unsubscribe link starts with it) and a usable provider.
`preflight(rendered, settings)` adds what needs the rendered issue: someone to send to, the
checks (`newsletter check`) and whether the reviewers' last test send had exactly this content.

Each problem has a code (for programs), a message (for people) and whether an operator may
override it (`send --all --force`): configuration problems and an empty list cannot be forced;
failed checks and unreviewed content can. Nothing here prints, asks or sends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from newsletter.checks import run_checks
from newsletter.deliver.providers import chosen, provider_class
from newsletter.deliver.sender import content_hash, recipient_count
from newsletter.errors import ConfigError
from newsletter.store import describe, open_store

# Problem codes
SECRET = "secret"  # NEWSLETTER_SECRET missing: no unsubscribe link can be signed
PUBLIC_URL = "public_url"  # links.public missing or not https
PROVIDER = "provider"  # the provider is unknown or its settings are incomplete
NO_SUBSCRIBERS = "no_subscribers"
CHECKS = "checks"  # `newsletter check` finds errors
NOT_REVIEWED = "not_reviewed"  # no test send of this issue yet
CONTENT_CHANGED = "content_changed"  # the content differs from the last test send


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    overridable: bool  # an operator may send anyway (`--force`)


@dataclass(frozen=True)
class Review:
    """The last test send of the issue: when, to whom, and whether it had this content."""

    sent_at: str
    recipients: str
    same_content: bool


@dataclass
class Preflight:
    provider: str = ""  # the registry name
    where: str = ""  # the provider's description: "through SendGrid"
    recipients: int = 0  # to be sent by this run
    active: int = 0  # active subscribers in all
    problems: list[Problem] = field(default_factory=list)
    check_errors: list = field(default_factory=list)  # the checks' error Findings
    review: Review | None = None
    checked: bool = False  # False: a problem no override helps stopped before the checks

    def blocking(self, force: bool = False) -> list[Problem]:
        """What stops the send: everything, or with force only what cannot be overridden."""
        return [p for p in self.problems if not (force and p.overridable)]

    def ok(self, force: bool = False) -> bool:
        return not self.blocking(force)


def settings_problems(settings) -> list[Problem]:
    """Configuration problems that no override helps; nothing connects, nothing renders."""
    problems = []
    if not settings.getenv("NEWSLETTER_SECRET"):
        problems.append(Problem(SECRET, str(ConfigError(
            "not set: put a long random string in NEWSLETTER_SECRET (environment or .env)",
            field="NEWSLETTER_SECRET")), overridable=False))
    if not (settings.public_url or "").startswith("https://"):
        # Mailbox providers only honour https one-click URLs (RFC 8058), and a link nobody
        # answers is unlawful.
        problems.append(Problem(PUBLIC_URL, str(ConfigError(
            "must be the https:// address where `newsletter serve` answers (every "
            "unsubscribe link starts with it)", file=settings.root / "newsletter.toml",
            field="links.public")), overridable=False))
    try:
        problem = provider_class(settings).usable(settings)
    except ConfigError as exc:  # an unknown NEWSLETTER_PROVIDER
        problem = str(exc)
    if problem:
        problems.append(Problem(PROVIDER, problem, overridable=False))
    return problems


def preflight(rendered, settings, *, retry_unknown: bool = False, offline: bool = False,
              findings: Sequence | None = None,
              progress: Callable[[int, int], None] | None = None) -> Preflight:
    """Every rule for sending `rendered` (a render.Rendered) to the subscribers now.

    findings: the checks' findings when the caller has them already (the preview); else the
    checks run here (`offline`: no link requests; `progress` as for `run_checks`). The checks
    are skipped when a problem that cannot be overridden was found first: they are slow.
    """
    result = Preflight(problems=settings_problems(settings))
    try:
        cls = provider_class(settings)
        result.provider, result.where = chosen(settings), cls.describe(settings)
    except ConfigError:
        pass
    result.recipients, result.active = recipient_count(settings, rendered.slug,
                                                       retry_unknown=retry_unknown)
    if result.active == 0:
        result.problems.append(Problem(
            NO_SUBSCRIBERS,
            f"no active subscribers in {describe(settings.db_path)}: nothing to send"
            " (add some with `newsletter subscribers import FILE.csv`)", overridable=False))
    if result.problems:
        return result
    result.checked = True
    if findings is None:
        findings = run_checks(rendered, settings, offline=offline, progress=progress)
    result.check_errors = [f for f in findings if f.level == "error"]
    if result.check_errors:
        result.problems.append(Problem(
            CHECKS, f"the checks found {len(result.check_errors)} error(s) "
            "(see `newsletter check`)", overridable=True))
    with open_store(settings) as opened:
        last = opened.approvals.last(rendered.slug)
    if last is None:
        result.problems.append(Problem(
            NOT_REVIEWED, "no test send of this issue yet: reviewers have not seen it"
            " (send one with --test)", overridable=True))
        return result
    result.review = Review(last.sent_at, last.recipients,
                           last.content_hash == content_hash(rendered))
    if not result.review.same_content:
        result.problems.append(Problem(
            CONTENT_CHANGED, f"the content changed since the last test send ({last.sent_at}"
            f" to {last.recipients}): reviewers have not seen exactly this content",
            overridable=True))
    return result

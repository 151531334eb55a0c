"""Spam signals: the message as it would be sent, scored by SpamAssassin's local rules.

Only local tests run (`-L`: no DNS blocklists, no network), Bayes is off (it would learn
from and write to the user's home), and the run is bounded by a timeout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from newsletter.checks.findings import Finding, error, note, warning
from newsletter.compose.render import Rendered
from newsletter.deliver.campaign import Recipient, issue_campaign
from newsletter.deliver.message import build_message
from newsletter.errors import NewsletterError

THRESHOLD = 5.0  # SpamAssassin's default required_score
DEFAULT_TIMEOUT = 60.0
SAMPLE_RECIPIENT = "reader@example.org"
# The spamassassin program to run (default: found on PATH), or "off" to skip the spam check.
PROGRAM_ENV = "NEWSLETTER_SPAMASSASSIN"


@dataclass(frozen=True)
class Rule:
    name: str
    points: float
    description: str


@dataclass(frozen=True)
class Score:
    score: float
    required: float
    rules: tuple[Rule, ...]

    def top(self, n: int = 5) -> list[Rule]:
        return sorted((r for r in self.rules if r.points > 0), key=lambda r: -r.points)[:n]


def spamassassin_path() -> str | None:
    return shutil.which("spamassassin")


def sample_unsubscribe_url(settings) -> str:
    base = getattr(settings, "public_url", None) or "https://example.org"
    return f"{base}/unsubscribe?t=sample-token-for-the-spam-check"


def build_eml(rendered: Rendered, settings) -> bytes:
    """The message one subscriber would get, as the providers build it."""
    unsubscribe = sample_unsubscribe_url(settings)
    message = build_message(issue_campaign(rendered, settings),
                            Recipient(SAMPLE_RECIPIENT, None, unsubscribe))
    return bytes(message)


def score_message(eml: bytes, *, timeout: float = DEFAULT_TIMEOUT,
                  executable: str | None = None) -> Score:
    """Run `spamassassin -t -L` on one message and read its report. Raises RuntimeError."""
    exe = executable or spamassassin_path()
    if not exe:
        raise RuntimeError("spamassassin is not installed")
    command = [exe, "-t", "-L", "-x", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0"]
    # A throwaway HOME: spamassassin creates ~/.spamassassin even with -x.
    with tempfile.TemporaryDirectory(prefix="newsletter-sa-") as home:
        # Only what spamassassin needs: never our secrets (API keys, SMTP passwords).
        env = {k: v for k, v in os.environ.items()
               if k in ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "PERL5LIB")}
        env["HOME"] = home
        done = _run(command, eml, timeout, env)
    output = done.stdout.decode("utf-8", "replace")
    score = parse_report(output)
    if score is None:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError("could not read spamassassin's report"
                           + (f": {detail[-1]}" if detail else ""))
    return score


def _run(command: list[str], eml: bytes, timeout: float, env: dict[str, str]):
    try:
        return subprocess.run(command, input=eml, capture_output=True, timeout=timeout,
                              check=False, env=env)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"spamassassin took longer than {timeout:g} s") from None
    except OSError as exc:
        raise RuntimeError(f"spamassassin could not run: {exc}") from None


_DETAILS = re.compile(r"Content analysis details:\s*\((-?\d+(?:\.\d+)?) points?, "
                      r"(-?\d+(?:\.\d+)?) required\)")
_STATUS = re.compile(r"^X-Spam-Status:.*?score=(-?\d+(?:\.\d+)?)\s+required=(-?\d+(?:\.\d+)?)",
                     re.M | re.S)
_ROW = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


def parse_report(output: str) -> Score | None:
    matches = list(_DETAILS.finditer(output))
    if not matches:
        status = _STATUS.search(output)
        if not status:
            return None
        return Score(float(status.group(1)), float(status.group(2)), ())
    last = matches[-1]
    rules: list[Rule] = []
    in_table = False
    for line in output[last.end():].splitlines():
        if line.startswith("----"):
            in_table = True
            continue
        if not in_table:
            continue
        row = _ROW.match(line)
        if row:
            rules.append(Rule(row.group(2), float(row.group(1)), row.group(3).strip()))
        elif line.startswith("  ") and line.strip() and rules:
            prev = rules[-1]
            rules[-1] = Rule(prev.name, prev.points, f"{prev.description} {line.strip()}")
        elif not line.strip():
            continue
        else:
            break
    return Score(float(last.group(1)), float(last.group(2)), tuple(rules))


def check_spam(rendered: Rendered, settings, *, timeout: float = DEFAULT_TIMEOUT) -> list[Finding]:
    chosen = (settings.getenv(PROGRAM_ENV) or "").strip()
    if chosen.lower() == "off":
        return [note("spam", f"spam score not checked: {PROGRAM_ENV} is off")]
    program = chosen or spamassassin_path()
    if not program:
        return [note("spam", "spam score not checked: spamassassin is not installed "
                     "(Debian: apt-get install spamassassin)")]
    try:
        eml = build_eml(rendered, settings)
    except (NewsletterError, ValueError) as exc:  # e.g. a header the builder refuses
        return [error("spam", f"the message could not be built: {exc}", "message")]
    try:
        result = score_message(eml, timeout=timeout, executable=program)
    except RuntimeError as exc:
        return [warning("spam", f"spam score not checked: {exc}")]
    rules = "; ".join(f"{r.name} {r.points:+g} ({r.description})" for r in result.top())
    rules_text = f"; top rules: {rules}" if rules else ""
    if result.score >= THRESHOLD:
        return [error("spam", f"SpamAssassin scores this {result.score:g} (spam from "
                      f"{THRESHOLD:g}){rules_text}", "message")]
    return [note("spam", f"SpamAssassin score {result.score:g} (spam from {THRESHOLD:g})"
                 f"{rules_text}", "message")]

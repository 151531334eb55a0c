"""`newsletter check`: lint the rendered issue before it is sent."""

from __future__ import annotations

import json
from pathlib import Path

import click

from newsletter.cli.common import load_settings, reports_errors
from newsletter.cli.progress import terminal_progress

_STYLE = {"error": {"fg": "red", "bold": True}, "warning": {"fg": "yellow", "bold": True},
          "note": {"fg": "cyan"}}
_TITLE = {"error": "Errors", "warning": "Warnings", "note": "Notes"}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_line(totals: dict[str, int]) -> str:
    return ", ".join(_plural(totals[level], level) for level in ("error", "warning", "note"))


def format_report(slug: str, subject: str, findings) -> list[str]:
    """The human report: grouped by level, then category, with a count line at the end."""
    from newsletter.checks import LEVELS, counts

    lines = [click.style(f"{slug}: {subject}", bold=True)]
    for level in LEVELS:
        mine = [f for f in findings if f.level == level]
        if not mine:
            continue
        lines.append("")
        lines.append(click.style(f"{_TITLE[level]} ({len(mine)})", **_STYLE[level]))
        for category in dict.fromkeys(f.category for f in mine):
            lines.append(f"  {category}")
            for f in mine:
                if f.category != category:
                    continue
                where = f"  [{f.where}]" if f.where and f.where not in f.message else ""
                lines.append(f"    - {f.message}{where}")
    lines.append("")
    lines.append(summary_line(counts(findings)))
    return lines


@click.command()
@click.argument("issue", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--offline", is_flag=True,
              help="Do not request links and images (everything else is still checked).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON (for CI).")
@click.option("--timeout", type=click.FloatRange(min=0.1, max=120), default=5.0,
              show_default=True, help="Seconds to wait for each link or image.")
@reports_errors
def check(issue: Path, offline: bool, as_json: bool, timeout: float) -> None:
    """Check a rendered issue: size, links, images, compliance, accessibility, spam.

    Prints errors, warnings and notes grouped by kind; exits 1 when there is any error.
    Links and images are requested (a few at once, short timeout) unless --offline;
    on a terminal, stderr shows how many of them have answered so far.

    \b
    Example:
      newsletter check issues/2011-05.yaml
      newsletter check issues/2011-05.yaml --offline
      newsletter check issues/2011-05.yaml --json > findings.json
    """
    from newsletter.checks import counts, run_checks
    from newsletter.compose.issue import load_issue
    from newsletter.compose.render import render_issue

    settings = load_settings()
    rendered = render_issue(load_issue(issue), settings)
    # Requests can take a while: n/total on a terminal (stderr, gone when done); never in a
    # pipe, and never on stdout, so the report and --json read exactly as without it.
    with terminal_progress("checking links and images", unit="URLs", transient=True) as progress:
        findings = run_checks(rendered, settings, offline=offline, timeout=timeout,
                              progress=progress)
    totals = counts(findings)
    if as_json:
        click.echo(json.dumps({
            "issue": rendered.slug,
            "file": str(issue),
            "subject": rendered.subject,
            "offline": offline,
            "findings": [f.to_dict() for f in findings],
            "errors": totals["error"],
            "warnings": totals["warning"],
            "notes": totals["note"],
        }, indent=2, ensure_ascii=False))
    else:
        for line in format_report(rendered.slug, rendered.subject, findings):
            click.echo(line)
    if totals["error"]:
        raise SystemExit(1)


COMMANDS = [check]

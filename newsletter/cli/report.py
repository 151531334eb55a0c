"""`newsletter report`: how an issue did, as an aligned table and optionally an HTML page."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.common import UserError, load_settings, reports_errors


def _slug(issue_path: str) -> str:
    return Path(issue_path).name.removesuffix(".yaml").removesuffix(".yml")


def format_table(report, zone) -> str:
    """The report as aligned plain text (what `newsletter report` prints)."""
    from newsletter.deliver.schedule import describe
    from newsletter.report import percent

    lines = []
    began = f"; the send began {describe(report.started, zone)}" if report.started else ""
    lines.append(f"{report.issue}: {report.sent} message(s) accepted by the provider{began}")
    if report.not_sent:
        lines.append("not accepted (yet): " + ", ".join(f"{n} {state}" for state, n
                                                          in report.not_sent.items())
                     + " (see `newsletter status`)")
    lines.append("")
    rows = [(m.label + (" *" if m.label == "opened" else ""), str(m.count), percent(m.rate),
             m.base) for m in report.metrics]
    lines += _aligned(("", "people", "rate", "of"), rows, right=(1, 2))
    lines.append("* approximate: Apple Mail Privacy Protection opens every message it receives,")
    lines.append("  and clients that block images never open; clicks are the surer measure.")
    for note in report.notes:
        lines += ["", note]
    if report.links:
        lines += ["", "Clicks per link (without utm_* parameters):"]
        lines += _aligned(("link", "clicks", "people"),
                          [(link.url, str(link.clicks), str(link.people))
                           for link in report.links], right=(1, 2))
    if report.days and any(b.opens or b.clicks for b in report.days):
        lines += ["", f"Opens and clicks per day, first week ({report.zone}):"]
        lines += _aligned(("day", "opens", "clicks"),
                          [(b.label, str(b.opens), str(b.clicks)) for b in report.days],
                          right=(1, 2))
        busy = [b for b in report.hours if b.opens or b.clicks]
        lines += ["", "First day, hours with any opens or clicks:"]
        lines += _aligned(("hour", "opens", "clicks"),
                          [(b.label, str(b.opens), str(b.clicks)) for b in busy], right=(1, 2))
    return "\n".join(lines)


def _aligned(head: tuple[str, ...], rows: list[tuple[str, ...]],
             right: tuple[int, ...] = ()) -> list[str]:
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]

    def line(row: tuple[str, ...]) -> str:
        cells = [v.rjust(w) if i in right else v.ljust(w)
                 for i, (v, w) in enumerate(zip(row, widths, strict=True))]
        return ("  " + "  ".join(cells)).rstrip()

    return [line(head), *(line(r) for r in rows)]


@click.command("report")
@click.argument("issue", metavar="ISSUE.yaml")
@click.option("--html", "html_path", metavar="FILE", type=click.Path(dir_okay=False),
              help="Also write the report as one self-contained HTML page with charts.")
@reports_errors
def report(issue: str, html_path: str | None) -> None:
    """Show how ISSUE did: delivered, bounced, opened, clicked, unsubscribed, complaints.

    Each as a count of addresses and a rate; then clicks per link and opens and clicks
    over the first days. Opens are approximate (Apple Mail Privacy Protection).

    \b
    Example:
      newsletter report issues/2011-05.yaml
      newsletter report issues/2011-05.yaml --html report.html
    """
    from newsletter.deliver.scheduled import zone as zone_of
    from newsletter.report import compute, load
    from newsletter.report.page import render_html

    settings = load_settings()
    slug = _slug(issue)
    data = load(settings, slug)
    if not sum(data.ledger.values()) and not data.events and not Path(issue).exists():
        raise UserError(f"{issue}: file not found (and nothing about '{slug}' in the database)")
    zone = zone_of(settings)
    result = compute(data, zone)
    click.echo(format_table(result, zone))
    if html_path:
        target = Path(html_path)
        page = render_html(result, title=f"{settings.name}: how {slug} did", settings=settings)
        partial = target.with_name(f".{target.name}.partial")
        try:
            partial.write_text(page, encoding="utf-8")
            partial.replace(target)  # never a half-written page
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise UserError(f"{target}: cannot write: {exc.strerror or exc}") from None
        click.echo(f"\nWrote {target} (open it in a browser; it needs no network).")


COMMANDS = [report]

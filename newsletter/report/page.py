"""`newsletter report --html`: one self-contained page (no scripts, no fonts, no requests: it
works offline and can be mailed as an attachment) with the charts drawn as inline SVG.

Every chart is an `<svg role="img">` named by its `<title>` and described by a `<desc>` that
says the chart's point in words, and is followed by a table with the same numbers, so a screen
reader (or a reader who cannot tell the colours apart) loses nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape

from markupsafe import Markup

from newsletter.compose.templates import environment
from newsletter.config import Settings
from newsletter.report import OPENS_CAVEAT, Bucket, Report, percent

OPENS = "#1d4f91"  # blue; both colours have >= 4.5:1 contrast on white, and differ for
CLICKS = "#b0461b"  # the common colour blindnesses (blue against orange)
INK = "#222222"
GRID = "#d0d0d0"
MAX_LINKS_CHARTED = 10



def render_html(report: Report, *, title: str | None = None,
                generated: dt.datetime | None = None, settings: Settings | None = None) -> str:
    """The page, from `report/page.html.j2` (the project's templates/ may override it)."""
    env = environment(settings, "report")
    generated = generated or dt.datetime.now(dt.UTC)
    rates = [(m.label, m.rate or 0.0, f"{m.count} ({percent(m.rate)} of {m.base})")
             for m in report.metrics]
    words = "; ".join(f"{m.label} {m.count}, {percent(m.rate)} of {m.base}"
                      for m in report.metrics)
    charts = {
        "rates": _hbars("chart-rates", "Share of messages: delivered, bounced, opened, "
                        "clicked, unsubscribed, complaints",
                        f"{report.sent} messages accepted by the provider: {words}.",
                        rates, 1.0),
    }
    top = report.links[:MAX_LINKS_CHARTED]
    if top:
        most = max(link.clicks for link in top)
        charts["links"] = _hbars(
            "chart-links", "Clicks per link",
            f"{len(report.links)} link(s) clicked; the most clicked is {top[0].url} with "
            f"{top[0].clicks} click(s) by {top[0].people} reader(s).",
            [(_shorten(link.url), link.clicks / most, f"{link.clicks}") for link in top], 1.0)
    if report.hours:
        charts["hours"] = _columns("chart-hours",
                                   f"Opens and clicks per hour, first day ({report.zone})",
                                   report.hours)
        charts["days"] = _columns("chart-days",
                                  f"Opens and clicks per day, first week ({report.zone})",
                                  report.days)
    return env.get_template("page.html.j2").render(
        report=report, title=title or f"How {report.issue} did", charts=charts,
        percent=percent, caveat=OPENS_CAVEAT, opens_colour=OPENS, clicks_colour=CLICKS,
        generated=generated.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        started=(report.started.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
                 if report.started else None),
    )


def _shorten(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _svg_open(chart_id: str, title: str, desc: str, width: int, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" id="{chart_id}"'
        f' aria-labelledby="{chart_id}-title" aria-describedby="{chart_id}-desc"'
        f' viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' font-family="system-ui, sans-serif" font-size="13">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>',
    ]


def _hbars(chart_id: str, title: str, desc: str,
           rows: Sequence[tuple[str, float, str]], top: float) -> Markup:
    """Horizontal bars: (label, value in 0..top, text shown after the bar)."""
    label_w, bar_w, value_w, row_h = 330, 300, 170, 26
    width = label_w + bar_w + value_w
    height = row_h * len(rows) + 10
    out = _svg_open(chart_id, title, desc, width, height)
    for i, (label, value, text) in enumerate(rows):
        y = 5 + i * row_h
        length = 0 if top <= 0 else max(0.0, min(1.0, value / top)) * bar_w
        out.append(f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" fill="{INK}">'
                   f"{escape(label)}</text>")
        out.append(f'<rect x="{label_w}" y="{y + 4}" width="{bar_w}" height="18" fill="none"'
                   f' stroke="{GRID}"/>')
        out.append(f'<rect x="{label_w}" y="{y + 4}" width="{length:.1f}" height="18"'
                   f' fill="{OPENS}"/>')
        out.append(f'<text x="{label_w + bar_w + 8}" y="{y + 17}" fill="{INK}">'
                   f"{escape(text)}</text>")
    out.append("</svg>")
    return Markup("\n".join(out))


def _columns(chart_id: str, title: str, buckets: Sequence[Bucket]) -> Markup:
    """Opens and clicks side by side per bucket, with a labelled scale."""
    opens = sum(b.opens for b in buckets)
    clicks = sum(b.clicks for b in buckets)
    busiest = max(buckets, key=lambda b: (b.opens + b.clicks, -b.start.timestamp()))
    desc = (f"{opens} opens and {clicks} clicks over {len(buckets)} periods"
            + (f"; the busiest starts {busiest.label} with {busiest.opens} opens and "
               f"{busiest.clicks} clicks." if opens + clicks else "; none yet."))
    left, bottom, top_pad, height_plot = 44, 70, 24, 200
    slot = max(18, min(60, 760 // max(1, len(buckets))))
    width = left + slot * len(buckets) + 70  # room for the last slanted label
    height = top_pad + height_plot + bottom
    most = max([b.opens for b in buckets] + [b.clicks for b in buckets] + [1])
    scale = _nice(most)
    out = _svg_open(chart_id, title, desc, width, height)
    # legend
    out.append(f'<rect x="{left}" y="4" width="12" height="12" fill="{OPENS}"/>'
               f'<text x="{left + 16}" y="14" fill="{INK}">opens</text>'
               f'<rect x="{left + 70}" y="4" width="12" height="12" fill="{CLICKS}"/>'
               f'<text x="{left + 86}" y="14" fill="{INK}">clicks</text>')
    base = top_pad + height_plot
    for tick in (0, scale // 2, scale) if scale % 2 == 0 else (0, scale):
        y = base - height_plot * tick / scale
        out.append(f'<line x1="{left}" x2="{width - 70}" y1="{y:.1f}" y2="{y:.1f}"'
                   f' stroke="{GRID}"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{INK}">'
                   f"{tick}</text>")
    bar = (slot - 6) / 2
    for i, b in enumerate(buckets):
        x = left + i * slot + 3
        for j, (value, colour) in enumerate(((b.opens, OPENS), (b.clicks, CLICKS))):
            h = height_plot * value / scale
            out.append(f'<rect x="{x + j * bar:.1f}" y="{base - h:.1f}" width="{bar:.1f}"'
                       f' height="{h:.1f}" fill="{colour}"/>')
        cx = x + bar
        out.append(f'<text transform="translate({cx:.1f},{base + 10}) rotate(45)"'
                   f' font-size="11" fill="{INK}">{escape(b.label)}</text>')
    out.append("</svg>")
    return Markup("\n".join(out))


def _nice(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... at least `value` (an even scale)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= value:
                return step * m
        step *= 10

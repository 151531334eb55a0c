"""The report's figures from built data (ledger counts + neutral provider events), and the HTML
page's structure (the browser test is test_report_browser.py)."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
from lxml import html as lxml_html

from newsletter.deliver.events import EventKind, ProviderEvent
from newsletter.report import ReportInput, compute, percent, strip_tracking
from newsletter.report.page import render_html

START = dt.datetime(2026, 11, 3, 14, 0, tzinfo=dt.UTC)  # Tuesday 9:00 in Toronto
TORONTO = ZoneInfo("America/Toronto")
_ids = itertools.count()


def ev(kind: EventKind, email: str, minutes: float = 1, *, url: str | None = None,
       issue: str = "2011-05", temporary: bool = False) -> ProviderEvent:
    return ProviderEvent(provider="sendgrid", event_id=f"e{next(_ids)}", kind=kind,
                         email=email, issue=issue,
                         timestamp=START + dt.timedelta(minutes=minutes), url=url,
                         temporary=temporary)


def people(n: int) -> list[str]:
    return [f"reader{i}@example.org" for i in range(n)]


def sample_input() -> ReportInput:
    everyone = people(10)
    events = [ev(EventKind.DELIVERED, e) for e in everyone[:8]]
    events += [ev(EventKind.BOUNCED, everyone[8]),
               ev(EventKind.BOUNCED, everyone[9], temporary=True),  # retried: not a bounce
               ev(EventKind.REJECTED, "dropped@example.org")]
    # 4 people open (one of them three times), at 0:10, 0:20, 1:30 and on day three
    events += [ev(EventKind.OPENED, everyone[0], 10), ev(EventKind.OPENED, everyone[0], 11),
               ev(EventKind.OPENED, everyone[0], 12), ev(EventKind.OPENED, everyone[1], 20),
               ev(EventKind.OPENED, everyone[2], 90), ev(EventKind.OPENED, everyone[3], 60 * 50)]
    story = "https://example.org/calgary?utm_source=newsletter&utm_medium=email&id=7"
    events += [ev(EventKind.CLICKED, everyone[0], 15, url=story),
               ev(EventKind.CLICKED, everyone[0], 16, url=story),
               ev(EventKind.CLICKED, everyone[1], 25,
                  url="https://example.org/calgary?id=7&utm_campaign=2011-05"),
               ev(EventKind.CLICKED, everyone[2], 95, url="https://example.org/archive")]
    events += [ev(EventKind.UNSUBSCRIBED, everyone[4], 30),
               ev(EventKind.COMPLAINED, everyone[5], 40),
               ev(EventKind.OPENED, everyone[6], 5, issue="2011-06")]  # another issue
    return ReportInput(issue="2011-05", ledger={"sent": 9, "queued": 1, "failed": 2},
                       events=events, started=START, unsubscribed={everyone[7], everyone[4]})


def test_figures_count_unique_addresses_with_rates() -> None:
    report = compute(sample_input(), TORONTO)
    got = {m.label: (m.count, m.base, percent(m.rate)) for m in report.metrics}
    assert report.sent == 10
    assert got == {
        "delivered": (8, "sent", "80.0%"),
        "bounced": (2, "sent", "20.0%"),  # one hard bounce, one drop; the temporary one not
        "opened": (4, "delivered", "50.0%"),
        "clicked": (3, "delivered", "37.5%"),
        "unsubscribed": (2, "delivered", "25.0%"),  # provider event + our own link, once each
        "complaints": (1, "delivered", "12.5%"),
    }
    assert report.not_sent == {"failed": 2}


def test_clicks_per_link_without_our_tracking_parameters() -> None:
    report = compute(sample_input(), TORONTO)
    assert [(link.url, link.clicks, link.people) for link in report.links] == [
        ("https://example.org/calgary?id=7", 3, 2),
        ("https://example.org/archive", 1, 1),
    ]


@pytest.mark.parametrize("url,expected", [
    ("https://e.org/a?utm_source=x&b=1&UTM_Medium=y", "https://e.org/a?b=1"),
    ("https://e.org/a?utm_source=x", "https://e.org/a"),
    ("https://e.org/a#frag", "https://e.org/a#frag"),
    ("https://e.org/a?q=caf%C3%A9&utm_term=z#top", "https://e.org/a?q=caf%C3%A9#top"),
    ("https://e.org/a?q=a%20b&q=c+d&utm_id=1", "https://e.org/a?q=a%20b&q=c+d"),
])
def test_strip_tracking(url: str, expected: str) -> None:
    assert strip_tracking(url) == expected


def test_opens_and_clicks_by_hour_on_day_one_and_by_day() -> None:
    report = compute(sample_input(), TORONTO)
    assert len(report.hours) == 24 and len(report.days) == 7
    assert [(b.opens, b.clicks) for b in report.hours[:3]] == [(4, 3), (1, 1), (0, 0)]
    assert sum(b.opens for b in report.hours) == 5  # the day-three open is not in day one
    assert [(b.opens, b.clicks) for b in report.days[:3]] == [(5, 4), (0, 0), (1, 0)]
    # labels in the newsletter's zone: 9:00 EST on Tuesday
    assert report.hours[0].label == "Tue 09:00" and report.days[1].label == "Wed Nov 04"


def test_buckets_start_on_the_hour_the_send_began():
    data = sample_input()
    late = ReportInput(data.issue, data.ledger, data.events,
                       started=START + dt.timedelta(minutes=37))
    report = compute(late, TORONTO)
    assert report.hours[0].label == "Tue 09:00" and report.hours[0].opens == 4


def test_without_events_rates_are_blank_and_a_note_says_why() -> None:
    report = compute(ReportInput("2011-05", {"sent": 5}, []))
    assert report.metric("delivered").rate == 0.0
    assert report.metric("opened").rate is None and percent(None) == "–"
    assert report.hours == () and "No provider events" in report.notes[0]


def test_html_page_is_self_contained_with_named_charts_and_tables() -> None:
    page = render_html(compute(sample_input(), TORONTO))
    doc = lxml_html.fromstring(page)
    svgs = doc.xpath("//svg")
    assert len(svgs) == 4
    for svg in svgs:
        assert svg.get("role") == "img"
        title = doc.get_element_by_id(svg.get("aria-labelledby"))
        desc = doc.get_element_by_id(svg.get("aria-describedby"))
        assert title.tag == "title" and title.text_content().strip()
        assert desc.tag == "desc" and desc.text_content().strip()
    assert len(doc.xpath("//table")) == 4  # the same numbers, for screen readers
    assert "Apple Mail Privacy Protection" in doc.get_element_by_id("opens-caveat").text_content()
    # nothing to fetch: no scripts, no external stylesheets, fonts or images
    assert not doc.xpath("//script | //link | //img | //iframe")
    assert "url(" not in page and "@import" not in page
    assert "https://example.org/calgary?id=7" in page


def test_html_escapes_what_came_from_the_provider() -> None:
    evil = 'https://e.org/"><script>alert(1)</script>?a=<b>&utm_source=x'
    data = ReportInput("2011-05", {"sent": 1},
                       [ev(EventKind.DELIVERED, "a@example.org"),
                        ev(EventKind.CLICKED, "a@example.org", url=evil)], started=START)
    page = render_html(compute(data))
    assert "<script>" not in page and "&lt;script&gt;" in page

"""How an issue did: the figures of `newsletter report`, from the send ledger and the provider's
neutral events (`deliver/events.py`).

The computation takes a small input (`ReportInput`: ledger counts, the issue's events, when the
send began, who unsubscribed by our own link), so it is the same whichever store or provider the
figures come from; `report/page.py` turns a `Report` into a self-contained HTML page, the CLI
into a table.

Every figure about people counts unique addresses: one reader opening three times is one
opener. Delivered and bounced are shares of the messages the provider accepted; opened,
clicked, unsubscribed and complaints are shares of those delivered. Opens are approximate:
Apple Mail Privacy Protection loads every image of every message it receives, so its users
all "open", and clients that block images never do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote_plus, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from newsletter.deliver.events import EventKind, ProviderEvent
from newsletter.store import open_store

DAYS = 7  # the daily chart covers the first week after the send
HOURS = 24  # the hourly chart covers the first day

OPENS_CAVEAT = (
    "Opens are approximate: Apple Mail Privacy Protection loads the images of every message it "
    "receives, so its users count as opening whether they read the issue or not, and readers "
    "whose mail client blocks images never count. Clicks are the better measure of reading."
)


@dataclass(frozen=True)
class ReportInput:
    issue: str
    ledger: Mapping[str, int]  # ledger state -> rows (sent, queued, failed, rejected, ...)
    events: Sequence[ProviderEvent]  # this issue's events, each once
    started: dt.datetime | None = None  # when the send began (UTC); else the first event
    unsubscribed: Collection[str] = ()  # addresses that used our own unsubscribe link after
    # they were sent this issue (provider unsubscribe events are in `events`)


@dataclass(frozen=True)
class Metric:
    label: str
    count: int
    base: str  # what the rate is a share of: "sent" or "delivered"
    rate: float | None  # count / base; None when the base is 0


@dataclass(frozen=True)
class LinkClicks:
    url: str  # without our tracking (utm_*) parameters
    clicks: int  # every click
    people: int  # unique addresses


@dataclass(frozen=True)
class Bucket:
    start: dt.datetime  # UTC
    label: str  # in the newsletter's time zone
    opens: int
    clicks: int


@dataclass(frozen=True)
class Report:
    issue: str
    zone: str
    sent: int  # accepted by the provider (ledger sent + queued)
    not_sent: Mapping[str, int]  # failed, rejected, unknown, pending rows
    metrics: tuple[Metric, ...]
    links: tuple[LinkClicks, ...]
    hours: tuple[Bucket, ...]  # the first day, hour by hour
    days: tuple[Bucket, ...]  # the first week, day by day
    started: dt.datetime | None
    events: int  # provider events considered
    notes: tuple[str, ...] = field(default=())

    def metric(self, label: str) -> Metric:
        return next(m for m in self.metrics if m.label == label)


def load(settings, issue: str) -> ReportInput:
    """The report's input for `issue` from the store of `settings`."""
    with open_store(settings) as store:
        ledger = store.ledger(issue)
        started = ledger.started()
        return ReportInput(
            issue=issue, ledger=ledger.counts(), events=store.events.of_issue(issue),
            started=dt.datetime.fromisoformat(started.replace("Z", "+00:00")) if started
            else None,
            unsubscribed=store.events.unsubscribed_by_link(issue))


def strip_tracking(url: str) -> str:
    """`url` without utm_* query parameters (ours; others stay in their order)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.query:
        return url
    # Piece by piece, so what remains keeps its spelling (%20 stays %20, not +).
    kept = [p for p in parts.query.split("&")
            if not unquote_plus(p.partition("=")[0]).lower().startswith("utm_")]
    return urlunsplit(parts._replace(query="&".join(kept)))


def _people(events: Iterable[ProviderEvent], *kinds: EventKind,
            permanent_only: bool = False) -> set[str]:
    return {e.email for e in events if e.kind in kinds and not (permanent_only and e.temporary)}


def _rate(count: int, base: int) -> float | None:
    return count / base if base else None


def compute(data: ReportInput, zone: ZoneInfo | None = None, *, days: int = DAYS,
            hours: int = HOURS) -> Report:
    zone = zone or ZoneInfo("UTC")
    events = [e for e in data.events if e.issue == data.issue]
    ledger = data.ledger
    sent = ledger.get("sent", 0) + ledger.get("queued", 0)
    delivered = len(_people(events, EventKind.DELIVERED))
    bounced = len(_people(events, EventKind.BOUNCED, EventKind.REJECTED, permanent_only=True))
    unsubscribed = _people(events, EventKind.UNSUBSCRIBED) | set(data.unsubscribed)
    counts = (
        ("delivered", delivered, "sent", sent),
        ("bounced", bounced, "sent", sent),
        ("opened", len(_people(events, EventKind.OPENED)), "delivered", delivered),
        ("clicked", len(_people(events, EventKind.CLICKED)), "delivered", delivered),
        ("unsubscribed", len(unsubscribed), "delivered", delivered),
        ("complaints", len(_people(events, EventKind.COMPLAINED)), "delivered", delivered),
    )
    metrics = tuple(Metric(label, n, base, _rate(n, of)) for label, n, base, of in counts)

    per_link: dict[str, tuple[int, set[str]]] = {}
    for e in events:
        if e.kind == EventKind.CLICKED and e.url:
            url = strip_tracking(e.url)
            clicks, people = per_link.get(url, (0, set()))
            people.add(e.email)
            per_link[url] = (clicks + 1, people)
    links = tuple(sorted((LinkClicks(url, n, len(p)) for url, (n, p) in per_link.items()),
                         key=lambda link: (-link.clicks, -link.people, link.url)))

    timed = [e for e in events if e.timestamp is not None
             and e.kind in (EventKind.OPENED, EventKind.CLICKED)]
    started = data.started or min((e.timestamp for e in events if e.timestamp), default=None)
    hourly: tuple[Bucket, ...] = ()
    daily: tuple[Bucket, ...] = ()
    if started is not None:
        origin = started.replace(minute=0, second=0, microsecond=0)  # whole hours read better
        hourly = _buckets(timed, origin, dt.timedelta(hours=1), hours, zone, "%a %H:%M")
        daily = _buckets(timed, origin, dt.timedelta(days=1), days, zone, "%a %b %d")

    notes = []
    if not events:
        notes.append("No provider events for this issue yet: they arrive when the provider's "
                     "webhook posts them to `newsletter serve` (SendGrid's Event Webhook); the "
                     "smtp and file providers report none.")
    return Report(
        issue=data.issue, zone=zone.key, sent=sent,
        not_sent={s: ledger.get(s, 0) for s in ("failed", "rejected", "unknown", "pending")
                  if ledger.get(s, 0)},
        metrics=metrics, links=links, hours=hourly, days=daily, started=started,
        events=len(events), notes=tuple(notes),
    )


def _buckets(events: Sequence[ProviderEvent], start: dt.datetime, width: dt.timedelta,
             count: int, zone: ZoneInfo, label: str) -> tuple[Bucket, ...]:
    opens = [0] * count
    clicks = [0] * count
    for e in events:
        assert e.timestamp is not None
        index = (e.timestamp - start) // width
        if 0 <= index < count:
            (opens if e.kind == EventKind.OPENED else clicks)[index] += 1
    return tuple(
        Bucket(start + i * width, (start + i * width).astimezone(zone).strftime(label),
               opens[i], clicks[i])
        for i in range(count))


def percent(rate: float | None) -> str:
    """`12.3%`, or `–` when there is nothing to divide by."""
    if rate is None:
        return "–"
    return f"{rate * 100:.1f}%"

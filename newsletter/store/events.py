"""Provider events (`events`), in the neutral vocabulary of `newsletter.deliver.events`: kept
once each by (provider, event_id), and counted per issue. The only SQL on that table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from newsletter.deliver.events import ACCEPTED, EventKind, ProviderEvent
from newsletter.store.common import Connection, iso, now

MAX_FIELD = 1000  # longest text kept of a free-text field (reasons can be long SMTP replies)


@dataclass(frozen=True)
class EventCount:
    events: int  # every event (an address opening twice counts twice)
    addresses: int  # distinct addresses


class Events:
    """The provider events of one connection (see `Store.events`)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, event: ProviderEvent) -> bool:
        """Keep `event`; False when this (provider, event_id) is kept already (a replay)."""
        return bool(self.conn.execute(
            "INSERT INTO events (provider, event_id, kind, email, issue, timestamp, reason, url,"
            " provider_type, temporary, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (event.provider[:50], event.event_id[:200], EventKind(event.kind).value,
             event.email[:MAX_FIELD], event.issue[:200] if event.issue else None,
             iso(event.timestamp) if event.timestamp else None, _cut(event.reason),
             _cut(event.url), (event.provider_type or "")[:50], int(event.temporary), now()),
        ).rowcount)

    def accepted(self, issue: str, emails: Sequence[str]) -> set[str]:
        """Of `emails`, those with an event of `issue` saying the provider accepted the
        message (deliver.events.ACCEPTED): evidence that a message in flight got there."""
        if not emails:
            return set()
        kinds = sorted(k.value for k in ACCEPTED)
        found: set[str] = set()
        for start in range(0, len(emails), 500):
            part = list(emails[start:start + 500])
            found.update(row[0] for row in self.conn.execute(
                "SELECT DISTINCT email FROM events WHERE issue = ? AND kind IN ({})"
                " AND email IN ({})".format(",".join("?" * len(kinds)),
                                            ",".join("?" * len(part))),
                (issue, *kinds, *part)))
        return found

    def total(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def counts(self, issue: str) -> dict[EventKind, EventCount]:
        """Events of one issue by kind (kinds with none are left out)."""
        return {
            EventKind(kind): EventCount(count, unique)
            for kind, count, unique in self.conn.execute(
                "SELECT kind, COUNT(*), COUNT(DISTINCT email) FROM events WHERE issue = ?"
                " GROUP BY kind", (issue,))
        }

    def of_issue(self, issue: str) -> list[ProviderEvent]:
        """Every event of one issue, in the order received."""
        return [
            ProviderEvent(provider=provider, event_id=event_id, kind=EventKind(kind),
                          email=email, issue=issue, timestamp=_time(timestamp), reason=reason,
                          url=url, provider_type=provider_type or "", temporary=bool(temporary))
            for provider, event_id, kind, email, timestamp, reason, url, provider_type, temporary
            in self.conn.execute(
                "SELECT provider, event_id, kind, email, timestamp, reason, url, provider_type,"
                " temporary FROM events WHERE issue = ? ORDER BY id", (issue,))
        ]

    def unsubscribed_by_link(self, issue: str) -> set[str]:
        """Recipients of `issue` who unsubscribed (by link or otherwise) after it was sent
        to them, by their subscriber status; provider unsubscribe events are in of_issue."""
        return {row[0] for row in self.conn.execute(
            "SELECT s.email FROM sends s JOIN subscribers u ON u.email = s.email"
            " WHERE s.issue = ? AND s.state IN ('sent', 'queued')"
            " AND u.status = 'unsubscribed' AND u.unsubscribed_at >= s.updated_at", (issue,))}

    def unsubscribed_after(self, issue: str) -> int:
        """Recipients of `issue` who unsubscribed after it was sent to them: by link (their
        status changed after their ledger row) or by a provider's unsubscribe event."""
        return self.conn.execute(
            "SELECT COUNT(*) FROM (SELECT s.email FROM sends s"
            " JOIN subscribers u ON u.email = s.email WHERE s.issue = ?"
            " AND u.status = 'unsubscribed' AND u.unsubscribed_at >= s.updated_at"
            " UNION SELECT email FROM events WHERE issue = ? AND kind = ?) AS gone",
            (issue, issue, EventKind.UNSUBSCRIBED.value)).fetchone()[0]


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _cut(text: str | None) -> str | None:
    return text[:MAX_FIELD] if text else None

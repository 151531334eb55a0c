"""A subscriber's life: subscribe (double opt-in), confirm, unsubscribe, provider events.

Plain functions over a `sqlite3.Connection` from `newsletter.store.connect` (schema owned by
store.py). Each function does its own small writes and leaves the transaction to the caller
(`with transaction(conn):`), so the web app can keep every transaction short and a webhook batch can
be applied in one. Every statement is parameterised.

Status words: pending (asked, not confirmed), active (sent to), unsubscribed (asked to stop),
suppressed (the provider reported a bounce, drop or spam complaint). Only `active` is sent to.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from newsletter import store
from newsletter.store import normalise_email, now, transaction

__all__ = ["transaction"]  # re-exported: `with transaction(conn):` around these calls

PENDING, ACTIVE, UNSUBSCRIBED, SUPPRESSED = (
    store.PENDING, store.ACTIVE, store.UNSUBSCRIBED, store.SUPPRESSED)

# SendGrid event names that end sending to an address, and the status each leads to.
SUPPRESSING_EVENTS = {
    "bounce": SUPPRESSED,
    "dropped": SUPPRESSED,
    "spamreport": SUPPRESSED,
    "unsubscribe": UNSUBSCRIBED,
    "group_unsubscribe": UNSUBSCRIBED,
}
# Counted per issue by `issue_stats`.
COUNTED_EVENTS = ("processed", "delivered", "deferred", "bounce", "dropped", "spamreport",
                  "unsubscribe", "group_unsubscribe", "open", "click")
KNOWN_EVENTS = frozenset(COUNTED_EVENTS)

_MAX_FIELD = 1000  # longest text kept from an event field (reasons can be long SMTP replies)
_SLUG = re.compile(r"^\d{4}-\d{2}")


# -- unsubscribe ---------------------------------------------------------------------------

def unsubscribe(conn: sqlite3.Connection, email: str, reason: str = "unsubscribe link",
                source: str = "web") -> bool:
    """Mark the address unsubscribed at once. True if this call changed anything.

    Idempotent: a second call keeps the first time and reason; a suppressed address stays
    suppressed (it is not sent to either way). An address we do not know is recorded as
    unsubscribed too, so a later import cannot quietly start sending to it.
    """
    email = normalise_email(email)
    when = now()
    why = f"{reason} ({source})" if source else reason
    cur = conn.execute(
        "UPDATE subscribers SET status = ?, status_reason = ?, unsubscribed_at = ?, "
        "updated_at = ? WHERE email = ? AND status NOT IN (?, ?)",
        (UNSUBSCRIBED, why, when, when, email, UNSUBSCRIBED, SUPPRESSED),
    )
    if cur.rowcount:
        return True
    cur = conn.execute(
        "INSERT OR IGNORE INTO subscribers (email, status, status_reason, created_at, "
        "updated_at, unsubscribed_at) VALUES (?, ?, ?, ?, ?, ?)",
        (email, UNSUBSCRIBED, why, when, when, when),
    )
    return bool(cur.rowcount)


# -- double opt-in --------------------------------------------------------------------------

@dataclass(frozen=True)
class SubscribeOutcome:
    email: str
    status: str  # the status after the request (an unsubscribed address stays unsubscribed)
    send_confirmation: bool  # False when already active


def subscribe_request(conn: sqlite3.Connection, email: str, name: str | None, ip: str | None,
                      form: str | None) -> SubscribeOutcome:
    """Record a subscription request and its consent details; the address is not sent to
    until `confirm`.

    - new address: a `pending` row with consent_at/source/ip/form;
    - pending: the request details are refreshed and a new confirmation is due (the web app
      limits how often one address is mailed);
    - unsubscribed or suppressed: the status stays as it is (nothing is sent to it) but the
      request is recorded with confirmed_at cleared, so only the confirmation link re-activates;
    - active: nothing changes (an unverified form post must not rewrite a consent record).
    """
    email = normalise_email(email)
    name = (name or "").strip() or None
    when = now()
    row = conn.execute(
        "SELECT status FROM subscribers WHERE email = ?",
        (email,),
    ).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO subscribers (email, name, status, created_at, updated_at, consent_at, "
            "consent_source, consent_ip, consent_form) VALUES (?, ?, ?, ?, ?, ?, 'form', ?, ?)",
            (email, name, PENDING, when, when, when, ip, form),
        )
        return SubscribeOutcome(email, PENDING, True)
    status = row[0]
    if status == ACTIVE:
        return SubscribeOutcome(email, ACTIVE, False)
    conn.execute(
        "UPDATE subscribers SET name = COALESCE(?, name), updated_at = ?, consent_at = ?, "
        "consent_source = 'form', consent_ip = ?, consent_form = ?, confirmed_at = NULL "
        "WHERE email = ?",
        (name, when, when, ip, form, email),
    )
    return SubscribeOutcome(email, status, True)


def confirm(conn: sqlite3.Connection, email: str) -> str:
    """Activate an address that has an open form request. Returns what happened:
    'confirmed', 'already' (active before), or 'nothing' (no open request: e.g. an old
    confirmation link clicked after unsubscribing, which must not re-subscribe)."""
    email = normalise_email(email)
    when = now()
    cur = conn.execute(
        "UPDATE subscribers SET status = ?, status_reason = NULL, confirmed_at = ?, "
        "updated_at = ?, unsubscribed_at = NULL WHERE email = ? AND status != ? "
        "AND confirmed_at IS NULL AND consent_source = 'form'",
        (ACTIVE, when, when, email, ACTIVE),
    )
    if cur.rowcount:
        return "confirmed"
    row = conn.execute("SELECT status FROM subscribers WHERE email = ?", (email,)).fetchone()
    return "already" if row and row[0] == ACTIVE else "nothing"


def subscriber(conn: sqlite3.Connection, email: str) -> store.Subscriber | None:
    return store.get_subscriber(conn, normalise_email(email))


# -- provider events ----------------------------------------------------------------------

@dataclass
class EventsApplied:
    received: int = 0
    new: int = 0
    duplicates: int = 0
    invalid: int = 0
    suppressed: int = 0  # subscribers whose status changed because of these events

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _text(value: Any, limit: int = _MAX_FIELD) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    return value[:limit]


def event_issue(event: Mapping[str, Any]) -> str | None:
    """The issue slug an event belongs to: custom_args `issue` (SendGrid puts custom_args at
    the top level of each event; a nested `custom_args` is accepted too), else the category
    that looks like a slug, else the first category. None for a test send's event."""
    issue = event.get("issue")
    nested = event.get("custom_args")
    test = event.get("test") or (nested.get("test") if isinstance(nested, Mapping) else None)
    if test == "1":  # a test send's copy (providers/sendgrid.py): not the issue's audience
        return None
    if not issue and isinstance(nested, Mapping):
        issue = nested.get("issue")
    if isinstance(issue, str) and issue:
        return issue[:200]
    categories = event.get("category")
    if isinstance(categories, str):
        categories = [categories]
    if isinstance(categories, list):
        names = [c for c in categories if isinstance(c, str) and c]
        for c in names:
            if _SLUG.match(c):
                return c[:200]
        if names:
            return names[0][:200]
    return None


def _reason(event: Mapping[str, Any], kind: str) -> str:
    detail = event.get("reason") or event.get("response") or event.get("type")
    return f"{kind}: {_text(detail, 500)}" if detail else kind


def apply_events(conn: sqlite3.Connection, events: Iterable[Any]) -> EventsApplied:
    """Store SendGrid Event Webhook events once each (by sg_event_id) and suppress addresses
    that bounced, were dropped, complained or unsubscribed. A replayed batch changes nothing.
    Call inside one transaction (`with transaction(conn):`)."""
    out = EventsApplied()
    when = now()
    for event in events:
        out.received += 1
        if not isinstance(event, Mapping):
            out.invalid += 1
            continue
        event_id, kind, email = event.get("sg_event_id"), event.get("event"), event.get("email")
        if not (isinstance(event_id, str) and event_id and isinstance(kind, str)
                and isinstance(email, str) and "@" in email):
            out.invalid += 1
            continue
        try:
            email = normalise_email(email[:_MAX_FIELD])
        except ValueError:
            out.invalid += 1
            continue
        timestamp = event.get("timestamp")
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            timestamp = None
        cur = conn.execute(
            "INSERT OR IGNORE INTO events (sg_event_id, issue, email, event, timestamp, reason, "
            "received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event_id[:200], event_issue(event), email, kind[:50], timestamp,
             _text(event.get("reason") or event.get("type")), when),
        )
        if not cur.rowcount:
            out.duplicates += 1
            continue
        out.new += 1
        status = SUPPRESSING_EVENTS.get(kind)
        # A "blocked" bounce is a temporary refusal by the receiving server: recorded, not
        # suppressed (SendGrid itself retries and does not add blocks to its bounce list).
        if status is None or (kind == "bounce" and event.get("type") == "blocked"):
            continue
        cur = conn.execute(
            "UPDATE subscribers SET status = ?, status_reason = ?, updated_at = ?, "
            "unsubscribed_at = COALESCE(unsubscribed_at, ?) "
            "WHERE email = ? AND status IN ('active', 'pending')",
            (status, _reason(event, kind), when, when, email),
        )
        out.suppressed += cur.rowcount
    return out


# -- statistics ----------------------------------------------------------------------------

def issue_stats(conn: sqlite3.Connection, issue: str) -> dict[str, int]:
    """What is known about one issue: the send ledger's states and the provider's events.

    Keys: every ledger state present (sent, queued, failed, ...), each event name with its
    count (`open`, `click` count every event; `unique_open`, `unique_click` count addresses),
    and `unsubscribed`: recipients of this issue who unsubscribed after it was sent to them
    (by link or by provider event).
    """
    stats: dict[str, int] = {}
    for state, count in conn.execute(
        "SELECT state, COUNT(*) FROM sends WHERE issue = ? GROUP BY state", (issue,)
    ):
        stats[state] = count
    for kind, count, unique in conn.execute(
        "SELECT event, COUNT(*), COUNT(DISTINCT email) FROM events WHERE issue = ? "
        "GROUP BY event", (issue,)
    ):
        stats[kind] = count
        if kind in ("open", "click"):
            stats[f"unique_{kind}"] = unique
    (unsubscribed,) = conn.execute(
        "SELECT COUNT(*) FROM (SELECT s.email FROM sends s JOIN subscribers u ON u.email = s.email "
        "WHERE s.issue = ? AND u.status = 'unsubscribed' AND u.unsubscribed_at >= s.updated_at "
        "UNION SELECT email FROM events WHERE issue = ? "
        "AND event IN ('unsubscribe', 'group_unsubscribe'))",
        (issue, issue),
    ).fetchone()
    stats["unsubscribed"] = unsubscribed
    return stats

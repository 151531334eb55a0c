"""A subscriber's life: subscribe (double opt-in), confirm, unsubscribe, provider events.

The rules over the store's tables: each function takes the store (or the `Tables` of one
transaction, as inside `Store.write`) and normalises the address it is given. Status words:
pending (asked, not confirmed), active (sent to), unsubscribed (asked to stop), suppressed
(the provider reported a bounce, a rejection or a spam complaint). Only `active` is sent to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from newsletter.deliver.events import ACCEPTED, EventKind, ProviderEvent
from newsletter.store import (
    ACTIVE,
    PENDING,
    SUPPRESSED,
    UNSUBSCRIBED,
    EventCount,
    SubscribeOutcome,
    Subscriber,
    Tables,
    normalise_email,
)

__all__ = ["ACTIVE", "PENDING", "SUPPRESSED", "UNSUBSCRIBED", "SubscribeOutcome",
           "normalise_email"]

# Provider event kinds that end sending to an address, and the status each leads to.
SUPPRESSING = {
    EventKind.BOUNCED: SUPPRESSED,
    EventKind.REJECTED: SUPPRESSED,
    EventKind.COMPLAINED: SUPPRESSED,
    EventKind.UNSUBSCRIBED: UNSUBSCRIBED,
}


# -- unsubscribe ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Unsubscribed:
    email: str
    outcome: str  # "unsubscribed", "recorded" (was not on the list) or "already"


def unsubscribe(store: Tables, email: str, reason: str, source: str | None = None
                ) -> Unsubscribed:
    """The one unsubscribe (the web link, `subscribers remove`): the address is unsubscribed
    at once. An address not on the list is recorded as unsubscribed, so no later import can
    mail it; a suppressed one stays suppressed; a second call keeps the first time and reason.
    ValueError for an address that is not one."""
    email = normalise_email(email)
    why = f"{reason} ({source})" if source else reason
    return Unsubscribed(email, store.subscribers.unsubscribe(email, why) or "already")


# -- double opt-in --------------------------------------------------------------------------

def subscribe_request(store: Tables, email: str, name: str | None, ip: str | None,
                      form: str | None) -> SubscribeOutcome:
    """Record a subscription request (see `Subscribers.subscribe_request`); the address is
    not sent to until `confirm`."""
    name = (name or "").strip() or None
    return store.subscribers.subscribe_request(normalise_email(email), name, ip, form)


def confirm(store: Tables, email: str) -> str:
    """'confirmed', 'already' or 'nothing' (see `Subscribers.confirm`)."""
    return store.subscribers.confirm(normalise_email(email))


def subscriber(store: Tables, email: str) -> Subscriber | None:
    return store.subscribers.get(normalise_email(email))


# -- provider events ----------------------------------------------------------------------

@dataclass
class EventsApplied:
    received: int = 0
    new: int = 0
    duplicates: int = 0
    invalid: int = 0
    suppressed: int = 0  # subscribers whose status changed because of these events
    settled: int = 0  # unknown ledger rows now sent: the provider reported accepting them

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def apply_events(store: Tables, events: Iterable[ProviderEvent], *, invalid: int = 0
                 ) -> EventsApplied:
    """Keep each event once (by provider and event id) and act on the new ones: a bounce
    (not a temporary one), a rejection or a complaint suppresses the address, an unsubscribe
    event unsubscribes it, and an event saying the provider accepted the message (queued,
    delivered, deferred, bounced, rejected) settles an `unknown` ledger row of its issue as
    sent (one arriving before the row became unknown is kept, and recovery consults it). A
    replayed batch changes nothing. One transaction.

    `invalid`: events the provider's parser could not read, counted in the result."""
    out = EventsApplied(received=invalid, invalid=invalid)
    with store.transaction() as tx:
        for event in events:
            out.received += 1
            try:
                email = normalise_email(event.email)
            except ValueError:
                out.invalid += 1
                continue
            if email != event.email:
                event = replace(event, email=email)
            if not tx.events.add(event):
                out.duplicates += 1
                continue
            out.new += 1
            if event.kind in ACCEPTED and event.issue:
                out.settled += tx.ledger(event.issue).settle(email)
            status = SUPPRESSING.get(event.kind)
            # A temporary bounce (the provider retries) is recorded, not acted on.
            if status is None or event.temporary:
                continue
            reason = f"{event.kind.value}: {event.reason}" if event.reason else event.kind.value
            out.suppressed += tx.subscribers.suppress(email, reason[:500], status)
    return out


# -- statistics ----------------------------------------------------------------------------

@dataclass(frozen=True)
class IssueStats:
    """What is known about one issue."""

    ledger: dict[str, int]  # every ledger state (sent, queued, failed, ...) with its count
    events: dict[EventKind, EventCount]  # provider events by kind (events and addresses)
    unsubscribed: int  # recipients who unsubscribed after it was sent to them (link or event)

    def count(self, *kinds: EventKind) -> int:
        return sum(self.events[k].events for k in kinds if k in self.events)


def issue_stats(store: Tables, issue: str) -> IssueStats:
    return IssueStats(store.ledger(issue).counts(), store.events.counts(issue),
                      store.events.unsubscribed_after(issue))

"""What a provider tells us afterwards, in one neutral vocabulary (django-anymail's).

A provider's webhook parser (in its own module under `deliver/providers/`) turns the provider's
own event names into `ProviderEvent`s; the store keeps them once each by `(provider, event_id)`,
and the subscriber rules (`subscribers/lifecycle.py`) act on the neutral `kind` only, so no code
outside a provider's module knows what SendGrid calls a bounce.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum


class EventKind(StrEnum):
    QUEUED = "queued"  # accepted by the provider (SendGrid "processed")
    DELIVERED = "delivered"
    DEFERRED = "deferred"  # the receiving server asked to try again later
    BOUNCED = "bounced"
    REJECTED = "rejected"  # refused by the provider before sending (SendGrid "dropped")
    OPENED = "opened"
    CLICKED = "clicked"
    COMPLAINED = "complained"  # marked as spam
    UNSUBSCRIBED = "unsubscribed"
    UNKNOWN = "unknown"  # an event type we do not map; kept, never acted on


# The provider accepted the message for this address: settles an unknown ledger row as sent.
ACCEPTED = frozenset({EventKind.QUEUED, EventKind.DELIVERED, EventKind.DEFERRED,
                      EventKind.BOUNCED, EventKind.REJECTED})


@dataclass(frozen=True)
class ProviderEvent:
    provider: str  # the registry name: "sendgrid"
    event_id: str  # the provider's own id, unique per provider; replays are ignored by it
    kind: EventKind
    email: str  # normalised address
    issue: str | None  # the issue slug, None for test sends and transactional mail
    timestamp: dt.datetime | None = None  # when it happened, UTC
    reason: str | None = None  # bounce or drop reason, as the provider gave it
    url: str | None = None  # the link clicked
    provider_type: str = ""  # the provider's own event name ("dropped", "spamreport")
    temporary: bool = False  # a bounce the provider will retry (SendGrid "blocked"): no suppression

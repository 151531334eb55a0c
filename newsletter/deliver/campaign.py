"""What is sent, to whom, and what came of it: the domain types every provider works with.

A `Campaign` is what is the same for every copy of one mailing; it has a `Kind`:

- `subscriber`: an issue sent to the list. Every copy carries its recipient's unsubscribe URL
  in the body and in `List-Unsubscribe` / `List-Unsubscribe-Post` (RFC 8058).
- `test`: an issue sent to reviewers ("[TEST] " before the subject). No List-Unsubscribe
  headers; providers tag it so its later events are not counted as the issue's.
- `transactional`: a one-off message to one person (the subscription confirmation). No
  List-Unsubscribe headers, and it belongs to no issue.

`make_campaign` is the one way to build a Campaign from the settings; `issue_campaign` builds
one from a rendered issue.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    SUBSCRIBER = "subscriber"
    TEST = "test"
    TRANSACTIONAL = "transactional"


class Status(StrEnum):
    """Per-recipient outcome; the same words appear in the send ledger and `status`."""

    SENT = "sent"  # the provider accepted it for delivery
    QUEUED = "queued"  # accepted, delivery later (scheduled)
    REJECTED = "rejected"  # refused for this recipient (bad address, suppressed)
    FAILED = "failed"  # certainly not accepted
    UNKNOWN = "unknown"  # may or may not have been accepted (timeout after sending)


@dataclass(frozen=True)
class Campaign:
    """What is the same for every copy: rendered once per issue, never per recipient."""

    slug: str  # the issue slug, or a name for a transactional message ("confirm")
    subject: str  # already prefixed "[TEST] " for test sends
    html: str  # contains render.UNSUBSCRIBE_PLACEHOLDER where each copy gets its own URL
    text: str
    from_email: str
    from_name: str
    reply_to: str | None = None
    list_id: str = "newsletter"
    kind: Kind = Kind.SUBSCRIBER

    @property
    def test(self) -> bool:
        return self.kind is Kind.TEST

    @property
    def to_subscribers(self) -> bool:
        """Sent to the list: each copy needs its unsubscribe URL and List-Unsubscribe."""
        return self.kind is Kind.SUBSCRIBER


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str | None = None
    unsubscribe_url: str | None = None  # fills the placeholder and List-Unsubscribe


@dataclass(frozen=True)
class Result:
    email: str
    status: Status
    message_id: str | None = None
    error: str | None = None


def make_campaign(settings, *, kind: Kind, slug: str, subject: str, html: str,
                  text: str) -> Campaign:
    """A Campaign with the sender's name, addresses and list id from the settings."""
    return Campaign(
        slug=slug,
        subject=("[TEST] " + subject) if kind is Kind.TEST else subject,
        html=html,
        text=text,
        from_email=settings.from_email,
        from_name=settings.from_name,
        reply_to=settings.reply_to,
        list_id=settings.list_id,
        kind=Kind(kind),
    )


def issue_campaign(rendered, settings, kind: Kind = Kind.SUBSCRIBER) -> Campaign:
    """The Campaign of a rendered issue (render.Rendered): subscriber or test kind."""
    return make_campaign(settings, kind=kind, slug=rendered.slug, subject=rendered.subject,
                         html=rendered.html, text=rendered.text)

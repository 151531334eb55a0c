"""The provider boundary: send one batch of personalised copies of one campaign.

The order of a send is fixed by the sender (newsletter/sender.py); a provider only maps a
Campaign and its Recipients onto its transport and reports one Result per recipient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from newsletter.errors import ProviderError


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

    slug: str
    subject: str  # already prefixed "[TEST] " for test sends
    html: str  # contains render.UNSUBSCRIBE_PLACEHOLDER where each copy gets its own URL
    text: str
    from_email: str
    from_name: str
    reply_to: str | None = None
    list_id: str = "newsletter"
    test: bool = False  # test sends carry no List-Unsubscribe headers


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


class RetryableError(ProviderError):
    """The batch certainly did not arrive (429, 5xx, connection refused): safe to send again.

    `retry_after` is the provider's requested wait in seconds, when it gave one.
    """

    def __init__(
        self, message: str, *, provider: str, status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, status=status)
        self.retry_after = retry_after


class Provider(Protocol):
    name: str
    max_batch: int  # most recipients one send_batch call takes

    def send_batch(self, campaign: Campaign, recipients: Sequence[Recipient]) -> list[Result]:
        """One Result per recipient, in order.

        Raises ProviderAuthError (stop everything), RetryableError (nothing was accepted;
        the caller may retry), or ProviderError (configuration or connection problem before
        anything was sent). A failure after the request may have been accepted is reported as
        Status.UNKNOWN results, never raised.

        Also (providers/file, smtp, sendgrid): ValueError, before anything is sent, for a
        caller bug (sendgrid: more than max_batch recipients; a subscriber send, test False,
        whose recipient lacks an unsubscribe_url or has one that is not a plain ASCII URL).
        Once any message of the batch may have been accepted, nothing is raised: recipients
        not attempted are FAILED ("not attempted: ..."). FAILED always means certainly not
        accepted (safe to send again); REJECTED means refused for that address (5xx, or an
        address that cannot be written without SMTPUTF8).
        """
        ...

    def close(self) -> None: ...

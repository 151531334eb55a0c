"""Helpers for the sender's tests: a recording provider, a hand-made Rendered, subscribers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from newsletter.compose.render import UNSUBSCRIBE_PLACEHOLDER, Rendered
from newsletter.deliver.campaign import Campaign, Recipient, Result, Status
from newsletter.store import open_store


def rendered(slug: str = "2011-05", subject: str = "Cities of Migration – May 2011") -> Rendered:
    return Rendered(
        slug=slug,
        subject=subject,
        preheader="Ideas from Calgary",
        html=f'<html><body><p>Hello</p><a href="{UNSUBSCRIBE_PLACEHOLDER}">Unsubscribe</a>'
        "</body></html>",
        text=f"Hello\n\nUnsubscribe: {UNSUBSCRIBE_PLACEHOLDER}\n",
    )


class RecordingProvider:
    """A real Provider that accepts everything and remembers each call.

    `script` may hold one callable per call (by call index) that runs before the batch is
    accepted: raise from it to simulate a provider error, or change the database.
    """

    name = "recording"

    def __init__(self, max_batch: int = 1000,
                 script: dict[int, Callable[[Sequence[Recipient]], None]] | None = None,
                 status: Status = Status.SENT) -> None:
        self.max_batch = max_batch
        self.calls: list[tuple[Campaign, list[Recipient]]] = []
        self.script = script or {}
        self.status = status
        self.closed = False

    def send_batch(self, campaign: Campaign, recipients: Sequence[Recipient]) -> list[Result]:
        index = len(self.calls)
        self.calls.append((campaign, list(recipients)))
        assert len(recipients) <= self.max_batch
        if index in self.script:
            self.script[index](recipients)
        return [Result(r.email, self.status, message_id=f"m{index}") for r in recipients]

    @property
    def delivered(self) -> list[str]:
        """Addresses of calls that did not raise."""
        return [r.email for c, rs in self.calls for r in rs]

    def close(self) -> None:
        self.closed = True


def add_subscribers(db_path, n: int, start: int = 0) -> list[str]:
    emails = [f"reader{i:06d}@example.org" for i in range(start, start + n)]
    with open_store(db_path) as store:
        store.subscribers.add_many(
            ((e, f"Reader {i}") for i, e in enumerate(emails, start)), "test")
    return emails


def counts(db_path, issue: str = "2011-05") -> dict[str, int]:
    with open_store(db_path) as store:
        return store.ledger(issue).counts()

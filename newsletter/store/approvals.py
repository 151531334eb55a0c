"""Test sends (`test_sends`): what reviewers were sent, so a full send can tell whether they
saw exactly this content. The only SQL on that table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from newsletter.store.common import Connection, now


@dataclass(frozen=True)
class TestSend:
    issue: str
    content_hash: str
    recipients: str  # comma-separated, as shown to the operator
    sent_at: str


class Approvals:
    """The test sends of one connection (see `Store.approvals`)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def record(self, issue: str, content_hash: str, recipients: Sequence[str]) -> None:
        self.conn.execute(
            "INSERT INTO test_sends (issue, content_hash, recipients, sent_at)"
            " VALUES (?, ?, ?, ?)", (issue, content_hash, ", ".join(recipients), now()))

    def last(self, issue: str) -> TestSend | None:
        row = self.conn.execute(
            "SELECT issue, content_hash, recipients, sent_at FROM test_sends WHERE issue = ?"
            " ORDER BY id DESC LIMIT 1", (issue,)).fetchone()
        return TestSend(*row) if row else None

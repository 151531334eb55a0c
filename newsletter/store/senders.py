"""Senders (`senders`): who is sending, from where, and since when. The only SQL on that table.

A full send registers itself before it claims anything (one durable row): the id stamped on
every row it claims, the host and process, the backend's durability epoch at that moment (see
`Backend.durability_epoch`) and whether it records each message's outcome as it goes
(`per_message`). Recovery reads it to decide what a dead sender's in-flight rows can be.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from newsletter.store.common import Connection, now


@dataclass(frozen=True)
class Sender:
    id: str
    issue: str
    host: str
    pid: int
    epoch: str  # the backend's durability epoch when the sender started
    per_message: bool  # outcomes recorded message by message (smtp, file), not per request
    started_at: str


_COLUMNS = "sender, issue, host, pid, epoch, per_message, started_at"


class Senders:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def start(self, issue: str, host: str, pid: int, epoch: str, per_message: bool) -> Sender:
        sender = Sender(uuid.uuid4().hex, issue, host, pid, epoch, per_message, now())
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO senders (sender, issue, host, pid, epoch, per_message, started_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sender.id, issue, host, pid, epoch, int(per_message), sender.started_at))
        return sender

    def get(self, ids: Sequence[str]) -> dict[str, Sender]:
        if not ids:
            return {}
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM senders"
            " WHERE sender IN ({})".format(",".join("?" * len(ids))), tuple(ids)).fetchall()
        return {r[0]: _sender(r) for r in rows}

    def mark_seeded(self, sender_id: str) -> None:
        """That sender has seeded its issue's ledger (see Store.seed_lock)."""
        self.conn.execute("UPDATE senders SET seeded = 1 WHERE sender = ?", (sender_id,))

    def seeded(self, issue: str, limit: int = 16) -> list[Sender]:
        """The latest senders that seeded this issue's ledger, newest first."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM senders"
            " WHERE issue = ? AND seeded = 1 ORDER BY started_at DESC LIMIT ?",
            (issue, limit)).fetchall()
        return [_sender(r) for r in rows]


def _sender(row: Sequence) -> Sender:
    return Sender(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])

"""After a crash: what a dead sender's in-flight rows can really be.

A sender that records each message's outcome as it goes (`per_message`: smtp, file) sends the
rows of a batch one after the other in their claim order (`seq`), and writes each outcome
before the next message of that connection starts. Those writes skip the fsync, but the
operating system keeps them through a killed process. So while the database's durability epoch
is the one the sender recorded when it started (same machine, not rebooted since; see
`Backend.durability_epoch`), every outcome it wrote is still there, and of each of its batches
only the FIRST row still in flight can have been on the wire: it becomes `unknown`; the later
ones were never attempted and go back to `pending`.

When the epoch changed (a power cut or an OS crash may have dropped outcome writes), or the
sender sent whole requests (`sendgrid`: a request is the unit), every row in flight becomes
`unknown`. A lost outcome write can therefore only turn a sent message into `unknown`, never
back into `pending`: the claim itself was durable before anything left.

Evidence settles an `unknown` before it is reported: a provider event saying the message was
accepted (deliver.events.ACCEPTED), or what the provider itself can show (a complete `.eml` in
the file outbox means sent). Only positive evidence counts: a message not found where this
process looks may have been written elsewhere (another machine's or another folder's outbox),
so it stays `unknown` rather than going back to `pending`. Rows of a sender that is still alive
are left alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from newsletter.store import InFlight, Store

UNKNOWN_REASON = "the sending process stopped while this message may have been on the wire"
PENDING_REASON = "not attempted: the sending process stopped before reaching it"
SENT_REASON = "in flight when the sending process stopped; the provider shows it arrived"

# What a provider can show of messages it may have sent: (found addresses, notes for people,
# conclusive: a message it does not find certainly did not go out, e.g. the file outbox)
Evidence = Callable[[str, Sequence[str]], tuple[set[str], list[str], bool]]


@dataclass
class Recovered:
    unknown: int = 0  # now unknown: may have been on the wire
    requeued: int = 0  # never attempted: pending again
    settled: int = 0  # shown to have arrived: sent
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.unknown + self.requeued + self.settled


def split_in_flight(rows: Sequence[InFlight], exact: Callable[[str | None], bool]
                    ) -> tuple[list[str], list[str]]:
    """(may have been on the wire, never attempted). `exact(sender_id)`: whether that
    sender's outcome writes are all known to be kept (per-message, same epoch)."""
    batches: dict[tuple, list[InFlight]] = defaultdict(list)
    maybe: list[str] = []
    for row in rows:
        if row.sender is None or row.batch is None or row.seq is None or not exact(row.sender):
            maybe.append(row.email)
        else:
            batches[(row.sender, row.batch)].append(row)
    never: list[str] = []
    for batch in batches.values():
        batch.sort(key=lambda r: r.seq)
        maybe.append(batch[0].email)
        never.extend(r.email for r in batch[1:])
    return maybe, never


def recover(store: Store, issue: str, evidence: Evidence | None = None) -> Recovered:
    """Settle the in-flight rows of `issue` left by senders that are no longer alive.
    Call while holding the send lock (or, with several senders, with liveness known)."""
    ledger = store.ledger(issue)
    rows = ledger.in_flight()
    out = Recovered()
    if not rows:
        if evidence is not None:
            out.notes = evidence(issue, [])[1]
        return out
    senders = store.sender_records.get(sorted({r.sender for r in rows if r.sender}))
    dead = [r for r in rows if r.sender not in senders
            or not store.sender_alive(senders[r.sender])]
    epoch = store.durability_epoch()

    def exact(sender_id: str | None) -> bool:
        sender = senders.get(sender_id or "")
        return sender is not None and sender.per_message and sender.epoch == epoch

    maybe, never = split_in_flight(dead, exact)
    arrived = store.events.accepted(issue, maybe)
    if evidence is not None:
        found, out.notes, _ = evidence(issue, [e for e in maybe if e not in arrived])
        arrived |= found
    unknown = [e for e in maybe if e not in arrived]
    out.settled = len(arrived)
    out.unknown = len(unknown)
    out.requeued = len(never)
    ledger.resolve([("sent", SENT_REASON, sorted(arrived)),
                    ("unknown", UNKNOWN_REASON, unknown),
                    ("pending", PENDING_REASON, never)])
    return out


def in_flight_now(store: Store, issue: str) -> tuple[int, int]:
    """(in flight with a live sender, interrupted: left by a sender that is gone and settled
    by the next send)."""
    rows = store.ledger(issue).in_flight()
    if not rows:
        return 0, 0
    senders = store.sender_records.get(sorted({r.sender for r in rows if r.sender}))
    alive = {sid: store.sender_alive(s) for sid, s in senders.items()}
    live = sum(1 for r in rows if alive.get(r.sender or "", False))
    return live, len(rows) - live

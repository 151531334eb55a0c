"""The send ledger (`sends`): what makes a send exactly-once, and the only SQL on that table.

Each (issue, email) row moves

    pending -> in_flight -> sent | queued | rejected | failed | unknown

`in_flight` is committed durably *before* the provider is called, and the outcome is written
only after it answered. Each claimed row carries its sender, its batch and its place in the
send order (`seq`), so that recovery can tell, of a dead sender's rows, which could have been
on the wire (see `deliver/recovery.py`): those become `unknown` and are resent only on
purpose (`send --retry-unknown`). (The listmonk lesson: a checkpoint that moves when a batch
is *fetched* loses or duplicates recipients.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from newsletter.errors import StoreError
from newsletter.store.common import (
    ACTIVE,
    DONE_STATES,
    IN_FLIGHT,
    LEDGER_STATES,
    Connection,
    now,
)


class InFlight(NamedTuple):
    """A row in flight, as recovery needs it."""

    email: str
    sender: str | None
    batch: int | None
    seq: int | None


class Claimed(NamedTuple):
    """A ledger row taken for sending (state now in_flight). A tuple: a full send makes one
    per subscriber. `rowid` is the row's id, trusted while the connection's change mark says
    so (see Ledger)."""

    email: str
    name: str | None
    rowid: int = 0


@dataclass(frozen=True)
class LedgerRow:
    email: str
    state: str
    message_id: str | None
    last_error: str | None
    attempts: int
    updated_at: str | None


T = TypeVar("T")
_TOP = 2**62  # above every row id: where a walk from the end starts

# (state, message_id, error, the Claimed rows with that outcome)
Outcomes = tuple[str, "str | None", "str | None", Sequence[Claimed]]


class Ledger:
    """One issue's ledger over one connection: the one write API of the `sends` table.

    A sending connection claims batches and writes their outcomes, grouped by (state,
    message_id, error) (a SendGrid request gives all its recipients one). Outcomes are
    written by row id rather than by (issue, email): about a third cheaper. A row id is
    trusted only while no other connection has committed anything since the batch was
    claimed (the connection's change mark unchanged, checked inside the write transaction:
    e.g. a VACUUM may renumber rows); otherwise the outcome is written by address.
    """

    def __init__(self, conn: Connection, issue: str) -> None:
        self.conn = conn
        self.issue = issue
        self._mark: object = None  # the change mark at the end of the last claim
        self._helper: ThreadPoolExecutor | None = None  # for claim(meanwhile=...)
        self.sender: str | None = None  # the id stamped on the rows this ledger claims
        # Claims walk the pending rows from the last one claimed, not from the start of the
        # issue's rows (PostgreSQL indexes (issue, id), not the pending rows: see its
        # migration 8). Rows put back behind the walk are found by one walk from the start
        # once the rest are taken (`claim(rewind=True)`).
        self._after = 0  # upward: the last row claimed; downward: the lowest (0: not begun)
        self._high = 0  # downward: the highest row seen (rows added since come above it)
        self._bottomed = False  # downward: nothing more below `_after` for now
        rid = conn.row_id
        # The next pending rows, in claim order, with what a claim needs to know.
        self._pending_sql = (
            f"SELECT s.{rid}, s.email, sub.name, sub.status FROM sends s"
            " LEFT JOIN subscribers sub ON sub.email = s.email"
            f" WHERE s.issue = ? AND s.state = 'pending' AND s.{rid} > ?"
            f" ORDER BY s.{rid} LIMIT ?"
            + getattr(conn, "claim_lock", ""))
        # A second sender on a shared send walks from the other end (see `from_the_end`):
        # down from a row, or down from the top to just above a row.
        self._below_sql = (
            self._pending_sql.replace(f"s.{rid} > ?", f"s.{rid} < ?")
            .replace(f"ORDER BY s.{rid} LIMIT", f"ORDER BY s.{rid} DESC LIMIT"))
        self._above_desc_sql = self._pending_sql.replace(
            f"ORDER BY s.{rid} LIMIT", f"ORDER BY s.{rid} DESC LIMIT")
        self._descending = False

    # -- before a send -------------------------------------------------------------------
    def recover_in_flight(self) -> int:
        """Every row left `in_flight` becomes `unknown` (no knowledge of what was on the
        wire; `deliver.recovery` knows better). Only while holding the send lock."""
        return self.conn.execute(
            "UPDATE sends SET state = 'unknown', updated_at = ?,"
            " last_error = 'the sending process stopped before the provider answered'"
            " WHERE issue = ? AND state = 'in_flight'", (now(), self.issue)).rowcount

    def in_flight(self) -> list[InFlight]:
        """The rows in flight, in claim order, with their sender, batch and send order."""
        return [InFlight(*row) for row in self.conn.execute(
            "SELECT email, sender, batch, seq FROM sends WHERE issue = ?"
            f" AND state = 'in_flight' ORDER BY {self.conn.row_id}", (self.issue,))]

    def resolve(self, outcomes: Sequence[tuple[str, str, Sequence[str]]]) -> int:
        """In-flight rows settled by recovery: (state, reason, emails) each (state one of
        sent, unknown, pending). One transaction; returns the rows changed."""
        changed = 0
        stamp = now()
        with self.conn.transaction():
            for state, reason, emails in outcomes:
                if state not in ("sent", "unknown", "pending"):
                    raise StoreError(f"recovery cannot settle a row as {state!r}",
                                     field="state")
                changed += self.conn.execute_in(
                    "UPDATE sends SET state = ?, last_error = ?, updated_at = ?"
                    " WHERE issue = ? AND state = 'in_flight' AND email IN ({})",
                    (state, reason, stamp, self.issue), list(emails))
        return changed

    def settle(self, email: str) -> bool:
        """An unknown row the provider says it accepted (an event) becomes sent."""
        return bool(self.conn.execute(
            "UPDATE sends SET state = 'sent', updated_at = ?,"
            " last_error = 'settled: the provider reported it accepted'"
            " WHERE issue = ? AND email = ? AND state = 'unknown'",
            (now(), self.issue, email)).rowcount)

    def record_one(self, email: str, state: str, message_id: str | None,
                   error: str | None) -> None:
        """One message's outcome, as soon as the provider has it (a single statement, so a
        commit of its own on the connection it runs on)."""
        self.conn.execute(
            "UPDATE sends SET state = ?, message_id = ?, last_error = ?, updated_at = ?"
            " WHERE issue = ? AND email = ? AND state = 'in_flight'",
            (state, message_id, error, now(), self.issue, email))

    def seed(self, chunk: int = 10_000, on_chunk: Callable[[], None] | None = None) -> int:
        """A `pending` row for every active subscriber not yet in the ledger for this issue.

        Rows already present (sent, unknown, ...) are left alone, so rerunning adds only
        people who subscribed since. Written in id-ranged chunks: short transactions that
        never hold the write lock long against the web app; `on_chunk()` after each one that
        added rows (a send may claim them meanwhile: see `deliver/sender.py`). Returns the
        number added.
        """
        added = 0
        stamp = now()
        # Chunks by id range, the ends found through the primary key: no scan of the
        # subscribers to find where a chunk of `chunk` active ones ends.
        last = 0
        while True:
            top = self.conn.execute("SELECT MAX(id) FROM subscribers").fetchone()[0] or 0
            if last >= top:  # (read again: people who subscribed meanwhile are added too)
                break
            while last < top:
                upper = min(last + chunk, top)
                inserted = self.conn.execute(  # one statement: a transaction of its own
                    "INSERT INTO sends (issue, email, state, attempts, updated_at)"
                    " SELECT ?, email, 'pending', 0, ? FROM subscribers"
                    " WHERE id > ? AND id <= ? AND status = ? ORDER BY id"
                    " ON CONFLICT DO NOTHING",
                    (self.issue, stamp, last, upper, ACTIVE)).rowcount
                if inserted and not added:
                    # So that claims walk the index from now on, and join the subscribers
                    # by index whatever statistics a bulk load left (one taken while it was
                    # uncommitted counts them as none: a claim then compares each row with
                    # every subscriber, a minute's stall until autovacuum's next round).
                    self.conn.analyze("subscribers", only_if_empty=True)
                    self.conn.analyze("sends")
                added += inserted
                last = upper
                if on_chunk is not None and inserted:
                    on_chunk()
                if not inserted:  # a gap in the ids (people removed): jump over it
                    following = self.conn.execute(
                        "SELECT MIN(id) FROM subscribers WHERE id > ?", (last,)).fetchone()[0]
                    last = top if following is None else max(last, following - 1)
        if added:
            self.conn.analyze("sends")
        return added

    def to_seed_and_pending(self) -> int:
        """Pending rows plus active subscribers without a row yet (what seed() would add),
        in one statement: right while another connection seeds."""
        return self.conn.execute(
            "SELECT (SELECT COUNT(*) FROM sends WHERE issue = ? AND state = 'pending')"
            " + (SELECT COUNT(*) FROM subscribers u WHERE u.status = ? AND NOT EXISTS"
            " (SELECT 1 FROM sends s WHERE s.issue = ? AND s.email = u.email))",
            (self.issue, ACTIVE, self.issue)).fetchone()[0]

    def seed_sample(self, size: int) -> int:
        """Make `size` rows pending (a canary): the pending rows already there (an
        interrupted run's) count first, then active subscribers not yet in the ledger for
        this issue are added in random order. Returns the number added; a later seed() adds
        everyone else, and the ledger keeps each address once."""
        with self.conn.transaction():
            pending = self.conn.execute(
                "SELECT COUNT(*) FROM sends WHERE issue = ? AND state = 'pending'",
                (self.issue,)).fetchone()[0]
            if size <= pending:
                return 0
            return self.conn.execute(
                "INSERT INTO sends (issue, email, state, attempts, updated_at)"
                " SELECT ?, u.email, 'pending', 0, ? FROM subscribers u WHERE u.status = ?"
                " AND NOT EXISTS (SELECT 1 FROM sends s WHERE s.issue = ? AND s.email = u.email)"
                " ORDER BY random() LIMIT ?",
                (self.issue, now(), ACTIVE, self.issue, size - pending)).rowcount

    def requeue(self, states: Sequence[str]) -> int:
        """Put rows in `states` (e.g. failed, or unknown on purpose) back to pending."""
        for state in states:
            if state in DONE_STATES or state == IN_FLIGHT or state not in LEDGER_STATES:
                raise StoreError(f"refusing to requeue {state!r} rows", field="state")
        return self.conn.execute_in(
            "UPDATE sends SET state = 'pending', updated_at = ? WHERE issue = ?"
            " AND state IN ({})", (now(), self.issue), list(states))

    # -- the send loop -------------------------------------------------------------------
    def claim(self, limit: int, outcomes: Sequence[Outcomes] = (),
              meanwhile: Callable[[list[Claimed]], T] | None = None, *,
              rewind: bool = True) -> tuple[list[Claimed], int, T | None]:
        """Write `outcomes` (the previous batch's), take up to `limit` pending rows (now
        in_flight) and return (claimed, skipped, what `meanwhile(claimed)` returned: None
        when not called, as when nothing was claimed). One transaction, committed before
        this returns, so nothing can be sent before its in_flight rows are durable.

        Nothing claimed means nothing pending is left, unless `rewind=False` (a seed is
        still adding rows): then the walk does not go back over the rows it passed (a walk
        per claim over all of them would make a send quadratic while it waits for the seed),
        and moves on to where rows are being added; a later `rewind=True` claim finds what
        it passed.

        Anyone no longer active (unsubscribed or suppressed since the ledger was seeded) is
        dropped from the ledger instead: never sent, and not re-added by a rerun while
        inactive; `skipped` counts them.

        `meanwhile` (e.g. signing the batch's links and building its request) runs in this
        thread while a helper thread writes `outcomes` and commits, which is database work
        and an fsync, done without the GIL. If the commit fails, the error is raised and what
        `meanwhile` made is dropped. If `meanwhile` raises, the batch goes back to pending
        (nothing of it was sent) and the error is raised.
        """
        conn = self.conn
        conn.begin()
        try:
            fresh = self._fresh()
            claimed, skipped = self._claim(limit, rewind)
            mark = conn.change_mark()
        except BaseException:
            conn.rollback()
            raise
        if meanwhile is None or not claimed:
            self._finish(outcomes, fresh)
            self._mark = mark
            return claimed, skipped, None
        if self._helper is None:
            self._helper = ThreadPoolExecutor(1, thread_name_prefix="ledger-commit")
        begun = threading.Event()
        finishing = self._helper.submit(self._finish, outcomes, fresh, begun)
        try:
            begun.wait()  # hand the GIL over: the helper is in the database before we compute
            made = meanwhile(claimed)
            finishing.result()  # re-raises a failed write or commit
        except BaseException:  # e.g. a second Ctrl-C: these rows were certainly not sent
            # Wait for the helper even through another Ctrl-C (it holds the connection's
            # transaction); if its commit failed, it was all rolled back: nothing to undo.
            if _settled(finishing):
                self._mark = mark
                self.release(claimed)
            raise
        self._mark = mark
        return claimed, skipped, made

    def record(self, outcomes: Sequence[Outcomes]) -> None:
        """Write outcomes of rows this ledger has in flight (one transaction)."""
        if outcomes:
            with self.conn.transaction():
                self._write(outcomes, self._fresh())

    def release(self, rows: Sequence[Claimed]) -> None:
        """In-flight rows that certainly were not sent go back to pending (e.g. after a 401)."""
        with self.conn.transaction():
            self.conn.execute_in(
                "UPDATE sends SET state = 'pending', updated_at = ?"
                " WHERE issue = ? AND state = 'in_flight' AND email IN ({})",
                (now(), self.issue), [c.email for c in rows])

    def close(self) -> None:
        if self._helper is not None:
            self._helper.shutdown(wait=True)
            self._helper = None

    def from_the_end(self) -> None:
        """Claim from the highest row down: a sender joining a shared send takes the rows
        the other sender reaches last, so neither walks over the other's claims (the claims
        skip locked rows, but each skipped row still costs a look)."""
        self._descending = True
        self._after, self._high, self._bottomed = 0, 0, False

    # -- reading -------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(LEDGER_STATES, 0)
        for state, count in self.conn.execute(
                "SELECT state, COUNT(*) FROM sends WHERE issue = ? GROUP BY state",
                (self.issue,)):
            counts[state] = count
        return counts

    def unknown_count(self) -> int:
        """counts()["unknown"] through the partial index: no scan of the ledger."""
        return self.conn.execute(
            "SELECT COUNT(*) FROM sends WHERE issue = ? AND state = 'unknown'",
            (self.issue,)).fetchone()[0]

    def emails(self, state: str, limit: int | None = None) -> list[str]:
        """Addresses in `state`, in claim order."""
        if state not in LEDGER_STATES:
            raise StoreError(f"unknown ledger state {state!r}", field="state")
        # The state written into the SQL (one of the constants above), not bound: only a
        # literal lets the database use the partial index of that state (pending, unknown).
        sql = (f"SELECT email FROM sends WHERE issue = ? AND state = '{state}'"
               f" ORDER BY {self.conn.row_id}")
        params: tuple = (self.issue,)
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        return [row[0] for row in self.conn.execute(sql, params)]

    def rows(self) -> list[LedgerRow]:
        """Every row of this issue, in claim order (for reports and tests: not for a send)."""
        return [LedgerRow(*row) for row in self.conn.execute(
            "SELECT email, state, message_id, last_error, attempts, updated_at FROM sends"
            f" WHERE issue = ? ORDER BY {self.conn.row_id}", (self.issue,))]

    def started(self) -> str | None:
        """When the first recipient had an answer (the database's time format), or None."""
        return self.conn.execute(
            "SELECT MIN(updated_at) FROM sends WHERE issue = ? AND state IN ('sent', 'queued')",
            (self.issue,)).fetchone()[0]

    def active_done(self, states: Sequence[str]) -> int:
        """Active subscribers whose row for this issue is in one of `states`."""
        return self.conn.execute(
            "SELECT COUNT(*) FROM subscribers u JOIN sends s ON s.email = u.email"
            " WHERE u.status = 'active' AND s.issue = ? AND s.state IN ({})".format(
                ",".join("?" * len(states))), (self.issue, *states)).fetchone()[0]

    # -- inside -------------------------------------------------------------------------
    def _claim(self, limit: int, rewind: bool = True) -> tuple[list[Claimed], int]:
        walk = self._walk_down if self._descending else self._walk_up
        rows = walk(limit, rewind)
        if not rows and rewind and (self._after or self._high or self._bottomed):
            self._after, self._high, self._bottomed = 0, 0, False  # from the start
            rows = walk(limit, rewind)
        take = [Claimed(r[1], r[2], r[0]) for r in rows if r[3] == ACTIVE]
        drop = [r[1] for r in rows if r[3] != ACTIVE] if len(take) < len(rows) else []
        rid = self.conn.row_id
        if drop:  # by (issue, email), the key both backends index
            self.conn.execute_in("DELETE FROM sends WHERE issue = ? AND email IN ({})",
                                 (self.issue,), drop)
        if take:
            # The batch is named by its first row; `seq` keeps the send order (the claim
            # order, which is the row order) even if the rows are renumbered later.
            self.conn.execute_in(
                "UPDATE sends SET state = 'in_flight', attempts = attempts + 1,"
                f" updated_at = ?, sender = ?, batch = ?, seq = {rid} WHERE {rid} IN ({{}})",
                (now(), self.sender, take[0].rowid), [c.rowid for c in take])
        return take, len(drop)

    def _walk_up(self, limit: int, rewind: bool) -> list:
        rows = self.conn.execute(self._pending_sql, (self.issue, self._after, limit)).fetchall()
        if rows:
            self._after = rows[-1][0]
        if len(rows) < limit and not rewind:
            self._after = max(self._after, self._last_row())  # only rows added from now on
        return rows

    def _walk_down(self, limit: int, rewind: bool) -> list:
        """The highest pending rows below the lowest claimed, or once nothing is left there
        while a seed goes on, the rows added above the highest seen; in ascending order: a
        batch is always sent in row order (recovery relies on it)."""
        if self._bottomed:
            rows = self.conn.execute(self._above_desc_sql,
                                     (self.issue, self._high, limit)).fetchall()
            if rows:
                self._high = rows[0][0]
        else:
            rows = self.conn.execute(self._below_sql,
                                     (self.issue, self._after or _TOP, limit)).fetchall()
            if rows:
                self._after = rows[-1][0]
                self._high = max(self._high, rows[0][0])
            if len(rows) < limit and not rewind:
                self._bottomed = True
                self._high = max(self._high, self._last_row())
        return rows[::-1]

    def _last_row(self) -> int:
        """The issue's highest row now (through the (issue, row) order: no scan)."""
        return self.conn.execute(f"SELECT MAX({self.conn.row_id}) FROM sends WHERE issue = ?",
                                 (self.issue,)).fetchone()[0] or 0

    def _finish(self, outcomes: Sequence[Outcomes], fresh: bool,
                begun: threading.Event | None = None) -> None:
        """Write the outcomes and commit the open transaction (roll back on any error)."""
        if begun is not None:
            begun.set()
        try:
            self._write(outcomes, fresh)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise

    def _fresh(self) -> bool:
        """No other connection has committed since the last claim (call in a transaction)."""
        return self._mark is not None and self.conn.change_mark() == self._mark

    def _write(self, outcomes: Sequence[Outcomes], by_rowid: bool) -> None:
        if not outcomes:
            return
        stamp = now()
        rid = self.conn.row_id
        for state, mid, err, rows in outcomes:
            if by_rowid:
                self.conn.execute_in(
                    "UPDATE sends SET state = ?, message_id = ?, last_error = ?,"
                    f" updated_at = ? WHERE {rid} IN ({{}}) AND state = 'in_flight'",
                    (state, mid, err, stamp), [c.rowid for c in rows])
            else:
                self.conn.execute_in(
                    "UPDATE sends SET state = ?, message_id = ?, last_error = ?,"
                    " updated_at = ? WHERE issue = ? AND state = 'in_flight' AND email IN ({})",
                    (state, mid, err, stamp, self.issue), [c.email for c in rows])


def _settled(future: Future) -> bool:
    """Wait until `future` is done, even if interrupted (KeyboardInterrupt) meanwhile; True
    when it succeeded. Its own errors come from a helper thread, never a KeyboardInterrupt."""
    while True:
        try:
            future.result()
            return True
        except KeyboardInterrupt:
            if future.done() and future.exception() is not None:
                return False
        except BaseException:
            return False

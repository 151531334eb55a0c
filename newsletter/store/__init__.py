"""The store: subscribers, the send ledger, provider events and test sends, behind one object.

    store = open_store(settings)            # or open_store(path); NEWSLETTER_DB picks the file
    store.subscribers.unsubscribe(email, reason)
    store.events.add(event)
    ledger = store.ledger(issue)            # the one write API of the send ledger
    store.write(lambda tx: tx.subscribers.confirm(email))  # a grouped durable web write
    with store.transaction() as tx: ...     # several changes, all or nothing
    store.close()

One owner per table, each a module with a class over one connection, and the only SQL on its
table: `subscribers.Subscribers` (every status change: subscribe request, confirm,
unsubscribe, suppress, set_status, import upsert; get/list/pages/counts), `ledger.Ledger`
(seed, claim, record, record_one, in_flight, resolve, settle, requeue, release, counts),
`senders.Senders` (who sends: id, host, pid, durability epoch), `events.Events` (neutral
provider events, counts per issue), `approvals.Approvals` (test sends), `schedules.Schedules`
(scheduled sends and stop requests). A new table is one more such module, a migration in
each backend, and a property on `Tables`.

The table owners write portable SQL (SQLite and PostgreSQL both run it): `?` placeholders,
`ON CONFLICT DO NOTHING` for insert-if-absent, no backend functions. A backend module
provides (`sqlite.SQLiteBackend`; the interface is `Backend` and `common.Connection`):

    backend.connect(durable=True) -> Connection  # a new connection of its own, migrated;
                                            # durable=False: commits without waiting for
                                            # the disk (survive a killed process, not a
                                            # power cut; PostgreSQL: synchronous_commit off)
    backend.connection() -> Connection      # this thread's connection
    backend.write(fn)                       # fn(conn), committed when it returns: grouped
                                            # with other threads' writes (SQLite) or each
                                            # statement on its own (PostgreSQL); fn opens a
                                            # transaction for all-or-nothing changes
    backend.send_lock()                     # context manager: one full send per database
                                            # (SQLite); on PostgreSQL senders share a send
                                            # and it yields whether this one is alone
    backend.connect(durable=False)          # optional: commits without waiting for the disk
    backend.send_running()                  # optional: a send holds the lock now
    backend.sender_alive(sender)            # optional: that sender (a `senders` row) still
                                            # runs, known at once (a lock, a session)
    backend.hold_sender(sender)             # optional: mark this process's sender alive
                                            # for others while the send lock is held
    backend.durability_epoch()              # optional: changes whenever commits made with
                                            # durable=False may have been lost (a reboot of
                                            # the database's machine, a server restart)
    backend.close()
    conn.execute(sql, params) -> cursor     # rowcount, fetchone, fetchall, iteration by index
    conn.execute_many(sql, rows) -> int     # one statement, many parameter rows
    conn.execute_in(sql, params, values)    # sql with `IN ({})` for a long list of values
    conn.transaction()                      # context manager; joins an open transaction
    conn.begin() / commit() / rollback() / in_transaction
    conn.row_id                             # the column numbering rows in insertion order
    conn.change_mark()                      # changes when another connection commits

`postgres.PostgresBackend` (NEWSLETTER_DB=postgresql://...) translates `?` to `%s`, keeps
`sends` with an id column as `row_id`, makes change_mark() constant (its ids never change),
and gives claims `FOR UPDATE SKIP LOCKED` (`conn.claim_lock`, empty on SQLite).
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from newsletter.store.approvals import Approvals, TestSend
from newsletter.store.common import (
    ACTIVE,
    DONE_STATES,
    IN_FLIGHT,
    INACTIVE,
    LEDGER_STATES,
    PENDING,
    SUBSCRIBER_STATUSES,
    SUPPRESSED,
    UNSUBSCRIBED,
    Connection,
    normalise_email,
    now,
)
from newsletter.store.events import EventCount, Events
from newsletter.store.ledger import Claimed, InFlight, Ledger, LedgerRow, Outcomes
from newsletter.store.postgres import PostgresBackend, is_url
from newsletter.store.postgres import describe as describe_url
from newsletter.store.schedules import Schedule, Schedules
from newsletter.store.senders import Sender, Senders
from newsletter.store.sqlite import SQLiteBackend
from newsletter.store.subscribers import ImportRow, SubscribeOutcome, Subscriber, Subscribers

__all__ = [
    "ACTIVE", "DONE_STATES", "IN_FLIGHT", "INACTIVE", "LEDGER_STATES", "PENDING",
    "SUBSCRIBER_STATUSES", "SUPPRESSED", "UNSUBSCRIBED", "Approvals", "Backend", "Claimed",
    "Connection", "EventCount", "Events", "ImportRow", "InFlight", "Ledger", "LedgerRow",
    "Outcomes", "Schedule", "Schedules", "Sender", "Senders", "Store",
    "SubscribeOutcome", "Subscriber", "Subscribers", "Tables", "TestSend", "describe",
    "is_url", "normalise_email", "now", "open_store",
]

T = TypeVar("T")


class Backend(Protocol):
    name: str
    concurrent_writes: bool  # True: also try_seed_lock, seed_unlock, seeding_elsewhere

    def connect(self, durable: bool = True) -> Connection: ...
    def connection(self) -> Connection: ...
    def write(self, fn: Callable[[Connection], T]) -> T: ...
    def ping(self) -> None:
        """Raise unless the database answers (a health check)."""
        self.conn.execute("SELECT 1").fetchone()

    def send_lock(self) -> AbstractContextManager[bool | None]: ...
    def close(self) -> None: ...


class Tables:
    """The table owners over one connection (inside `Store.write` and `Store.transaction`,
    the connection of that transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def conn(self) -> Connection:
        return self._conn

    @property
    def subscribers(self) -> Subscribers:
        return Subscribers(self.conn)

    @property
    def events(self) -> Events:
        return Events(self.conn)

    @property
    def approvals(self) -> Approvals:
        return Approvals(self.conn)

    @property
    def schedules(self) -> Schedules:
        return Schedules(self.conn)

    @property
    def sender_records(self) -> Senders:
        return Senders(self.conn)

    def ledger(self, issue: str) -> Ledger:
        return Ledger(self.conn, issue)

    @contextmanager
    def transaction(self) -> Iterator[Tables]:
        """Several changes, all or nothing (joins a transaction already open)."""
        conn = self.conn
        with conn.transaction():
            yield Tables(conn)


class Store(Tables):
    """The database: the tables over this thread's connection, plus the durable writes."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @property
    def conn(self) -> Connection:
        return self.backend.connection()

    def write(self, fn: Callable[[Tables], T]) -> T:
        """`fn(tables)`, committed when this returns (a web request's durable write):
        grouped with concurrent writes of other threads (SQLite), or each statement
        committing on its own (PostgreSQL). Changes that must be all or nothing go in
        `tables.transaction()`, as the table owners' methods do."""
        return self.backend.write(lambda conn: fn(Tables(conn)))

    def ping(self) -> None:
        """Raise unless the database answers (a health check)."""
        self.conn.execute("SELECT 1").fetchone()

    def send_lock(self) -> AbstractContextManager[bool | None]:
        return self.backend.send_lock()

    def senders(self) -> int | None:
        """Senders running on this database now, where the backend can tell (PostgreSQL)."""
        count = getattr(self.backend, "senders", None)
        return count() if count else None

    def sender_alive(self, sender: Sender) -> bool:
        """Whether that sender still runs (backends that cannot tell: any sender running)."""
        alive = getattr(self.backend, "sender_alive", None)
        if alive is not None:
            return alive(sender)
        return bool(self.senders())

    def hold_sender(self, sender: Sender) -> None:
        """Make `sender` (this process's, just registered) known as alive to others while its
        send lock is held, where the backend tracks each sender (PostgreSQL)."""
        hold = getattr(self.backend, "hold_sender", None)
        if hold is not None:
            hold(sender)

    @property
    def concurrent_writes(self) -> bool:
        """Whether writers on several connections proceed side by side (PostgreSQL) rather
        than one at a time (SQLite): then senders share a send, and it is seeded while the
        first rows are sent."""
        return self.backend.concurrent_writes

    def try_seed_lock(self, issue: str) -> bool:
        """Take the lock under which `issue`'s ledger is seeded, if free (backends with
        concurrent writes, inside send_lock; released by seed_unlock or the send's end)."""
        return self.backend.try_seed_lock(issue)  # type: ignore[attr-defined]

    def seed_unlock(self, issue: str) -> None:
        self.backend.seed_unlock(issue)  # type: ignore[attr-defined]

    def seeding_elsewhere(self, issue: str) -> bool:
        """Whether another sender is seeding `issue`'s ledger now."""
        return self.backend.seeding_elsewhere(issue)  # type: ignore[attr-defined]

    @property
    def knows_each_sender(self) -> bool:
        """Whether sender_alive tells each sender apart even while others run (PostgreSQL),
        so a dead sender's rows can be recovered beside live senders."""
        return hasattr(self.backend, "hold_sender")

    def durability_epoch(self) -> str:
        """See the backend's; one that cannot tell gives a value never seen again, so
        recovery treats every row in flight as possibly sent."""
        epoch = getattr(self.backend, "durability_epoch", None)
        return epoch() if epoch is not None else f"unknown/{uuid.uuid4().hex}"

    def connect_fast(self) -> Connection | None:
        """A connection of its own whose commits skip waiting for the disk (per-message
        outcomes), or None where the backend does not offer that (then a sender records
        outcomes per batch: a commit per message that waits for the disk would be slow)."""
        if "durable" in inspect.signature(self.backend.connect).parameters:
            return self.backend.connect(durable=False)  # type: ignore[call-arg]
        return None

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(where: Any) -> Store:
    """The store of `settings` (its `db_path`), of a path (SQLite) or of a
    `postgresql://` URL (PostgreSQL). Created and migrated when needed; StoreError (naming
    the file, or the server and database without the password) when it cannot be opened."""
    target = getattr(where, "db_path", where)
    if is_url(target):
        return Store(PostgresBackend(target))
    return Store(SQLiteBackend(Path(target)))


def describe(target: str | Path) -> str:
    """The database as messages show it: a path, or a URL without its password."""
    return describe_url(target) if is_url(target) else str(target)

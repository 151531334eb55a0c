"""The SQLite backend: one database file shared by the CLI and `newsletter serve`.

Everything SQLite-specific lives here: WAL mode, a busy timeout, `synchronous=FULL`, autocommit
connections with short explicit `BEGIN IMMEDIATE` transactions (so two writers never
deadlock), `PRAGMA user_version` migrations, `PRAGMA data_version` (has another connection
committed?), the group commit that makes many small durable web writes fast, and the
lock file that allows one `send --all` per database.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from newsletter.errors import NewsletterError, StoreError
from newsletter.store.senders import Sender

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY,
        email TEXT UNIQUE NOT NULL,
        name TEXT,
        status TEXT NOT NULL CHECK (status IN ('pending','active','unsubscribed','suppressed')),
        status_reason TEXT,
        created_at TEXT,
        updated_at TEXT,
        unsubscribed_at TEXT,
        consent_at TEXT,
        consent_source TEXT,
        consent_ip TEXT,
        consent_form TEXT,
        confirmed_at TEXT
    );
    CREATE TABLE sends (
        issue TEXT NOT NULL,
        email TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN
            ('pending','in_flight','sent','queued','failed','rejected','unknown')),
        message_id TEXT,
        last_error TEXT,
        attempts INTEGER DEFAULT 0,
        updated_at TEXT,
        PRIMARY KEY (issue, email)
    );
    CREATE INDEX sends_issue_state ON sends (issue, state);
    CREATE TABLE test_sends (
        id INTEGER PRIMARY KEY,
        issue TEXT,
        content_hash TEXT,
        recipients TEXT,
        sent_at TEXT
    );
    CREATE INDEX test_sends_issue ON test_sends (issue, id);
    CREATE TABLE events (
        sg_event_id TEXT PRIMARY KEY,
        issue TEXT,
        email TEXT,
        event TEXT,
        timestamp INTEGER,
        reason TEXT,
        received_at TEXT
    );
    CREATE INDEX events_issue ON events (issue, event);
    """,
    # 2: only pending rows are indexed (by issue, then rowid = claim order): a row leaves the
    # index once when claimed, instead of being moved within it at every state change.
    """
    DROP INDEX sends_issue_state;
    CREATE INDEX sends_pending ON sends (issue) WHERE state = 'pending';
    """,
    # 3: the few `unknown` rows, for the report at the end of every send (without it, two
    # scans of the whole ledger); rows rarely enter it, so it costs a send nothing.
    """
    CREATE INDEX sends_unknown ON sends (issue) WHERE state = 'unknown';
    """,
    # 4: provider events in the neutral vocabulary, unique per (provider, event_id); the
    # SendGrid rows of earlier versions are converted (a "blocked" bounce, which SendGrid
    # retries, is temporary; only its reason was kept, so that is what tells it).
    """
    CREATE TABLE provider_events (
        id INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        event_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        email TEXT,
        issue TEXT,
        timestamp TEXT,
        reason TEXT,
        url TEXT,
        provider_type TEXT,
        temporary INTEGER NOT NULL DEFAULT 0,
        received_at TEXT,
        UNIQUE (provider, event_id)
    );
    INSERT INTO provider_events (provider, event_id, kind, email, issue, timestamp, reason,
                                 provider_type, temporary, received_at)
        SELECT 'sendgrid', sg_event_id,
               CASE event
                   WHEN 'processed' THEN 'queued'
                   WHEN 'delivered' THEN 'delivered'
                   WHEN 'deferred' THEN 'deferred'
                   WHEN 'bounce' THEN 'bounced'
                   WHEN 'dropped' THEN 'rejected'
                   WHEN 'open' THEN 'opened'
                   WHEN 'click' THEN 'clicked'
                   WHEN 'spamreport' THEN 'complained'
                   WHEN 'unsubscribe' THEN 'unsubscribed'
                   WHEN 'group_unsubscribe' THEN 'unsubscribed'
                   ELSE 'unknown' END,
               email, issue,
               strftime('%Y-%m-%dT%H:%M:%SZ', timestamp, 'unixepoch'),
               reason, event, event = 'bounce' AND reason = 'blocked', received_at
        FROM events ORDER BY rowid;
    DROP TABLE events;
    ALTER TABLE provider_events RENAME TO events;
    CREATE INDEX events_issue ON events (issue, kind);
    """,
    # The consent record of an imported export: the IP its tool saw the confirmation from,
    # and the file the subscriber came from.
    """
    ALTER TABLE subscribers ADD COLUMN confirm_ip TEXT;
    ALTER TABLE subscribers ADD COLUMN source_file TEXT;
    """,
    # 6: scheduled sends and stop requests (store/schedules.py).
    """
    CREATE TABLE schedules (
        id INTEGER PRIMARY KEY,
        issue TEXT NOT NULL,
        issue_path TEXT NOT NULL,
        send_at TEXT NOT NULL,
        state TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        scheduled_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        detail TEXT,
        started_at TEXT,
        finished_at TEXT,
        runner TEXT,
        offline INTEGER NOT NULL DEFAULT 0,
        forced INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX schedules_waiting ON schedules (send_at) WHERE state = 'scheduled';
    CREATE TABLE stop_requests (
        issue TEXT PRIMARY KEY,
        requested_by TEXT NOT NULL,
        requested_at TEXT NOT NULL
    );
    """,
    # 7: who sends (a senders row per full send), and on each claimed row its sender, its
    # batch and its place in the send order: recovery after a crash reads them.
    """
    CREATE TABLE senders (
        sender TEXT PRIMARY KEY,
        issue TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        epoch TEXT NOT NULL,
        per_message INTEGER NOT NULL DEFAULT 0,
        started_at TEXT
    );
    ALTER TABLE sends ADD COLUMN sender TEXT;
    ALTER TABLE sends ADD COLUMN batch INTEGER;
    ALTER TABLE sends ADD COLUMN seq INTEGER;
    """,
    # 8: which senders seeded the ledger (so a sender joining a running send need not seed it
    # again). On PostgreSQL the indexes of `sends` change too, so that a state change is a HOT
    # update; SQLite's partial index of pending rows already walks in rowid order.
    """
    ALTER TABLE senders ADD COLUMN seeded INTEGER NOT NULL DEFAULT 0;
    """,
    # 9: nothing on SQLite (on PostgreSQL: the function through which a sender that does not
    # own the tables refreshes their statistics).
    "",
    # Append a migration (and its PostgreSQL twin in postgres.py), never edit one above.
]
SCHEMA_VERSION = len(MIGRATIONS)


def boot_id() -> str:
    """This boot of the machine: a new value after every restart of the OS."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: never equal to a recorded one, so recovery stays cautious
        return f"unknown-{os.getpid()}-{time.time()}"


class SQLiteConnection:
    """One sqlite3 connection in autocommit mode: single statements commit at once, and
    multi-step work runs in `with conn.transaction():` (BEGIN IMMEDIATE ... COMMIT)."""

    row_id = "rowid"

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.raw.execute(sql, params)

    def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        return self.raw.executemany(sql, rows).rowcount

    def execute_in(self, sql: str, params: Sequence[Any], values: Sequence[Any],
                   chunk: int = 5000) -> int:
        """`sql` with `IN ({})` for `values`: one statement per `chunk` values, which is far
        cheaper than executemany. Returns the number of rows changed."""
        changed = 0
        for start in range(0, len(values), chunk):
            part = values[start:start + chunk]
            changed += self.raw.execute(sql.format(",".join("?" * len(part))),
                                        (*params, *part)).rowcount
        return changed

    @contextmanager
    def transaction(self) -> Iterator[SQLiteConnection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception). Inside a transaction
        already (e.g. a grouped web write), it joins that one."""
        if self.raw.in_transaction:
            yield self
            return
        self.raw.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            if self.raw.in_transaction:
                self.raw.execute("ROLLBACK")
            raise
        self.raw.execute("COMMIT")

    def begin(self) -> None:
        self.raw.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.raw.in_transaction:  # a failed COMMIT may have rolled back already
            self.raw.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def change_mark(self) -> int:
        """Changes when another connection commits (so a row id read before may be stale:
        e.g. a VACUUM may renumber rows). Call inside a transaction to compare two."""
        return self.raw.execute("PRAGMA data_version").fetchone()[0]

    def analyze(self, table: str, only_if_empty: bool = False) -> None:
        """Nothing: SQLite's plans for these tables need no statistics."""

    def close(self) -> None:
        self.raw.close()


def _open(path: Path, durable: bool = True) -> SQLiteConnection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
        raw.execute("PRAGMA busy_timeout = 5000")
        raw.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed `in_flight` survives a power cut, so it can never silently revert
        # to `pending` and be sent twice.
        # Not durable (a sender's per-message outcomes): NORMAL in WAL mode writes each commit
        # to the OS without an fsync, which keeps it through a killed process but not through
        # a power cut (see durability_epoch); unlike OFF it never risks a corrupt file.
        raw.execute("PRAGMA synchronous = FULL" if durable else "PRAGMA synchronous = NORMAL")
        raw.execute("PRAGMA foreign_keys = ON")
        _migrate(raw)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open the database: {exc}", file=path) from None
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else path.parent
        why = "a file is in the way" if isinstance(exc, FileExistsError) else exc.strerror
        raise StoreError(f"cannot create the database folder {where}: {why}"
                         " (set NEWSLETTER_DB to a writable path)", file=path) from None
    return SQLiteConnection(raw)


def _migrate(raw: sqlite3.Connection) -> None:
    version = raw.execute("PRAGMA user_version").fetchone()[0]
    if version >= SCHEMA_VERSION:
        return
    raw.execute("BEGIN IMMEDIATE")
    try:
        # Re-read inside the lock: another process may have migrated meanwhile.
        version = raw.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    raw.execute(statement)
            raw.execute(f"PRAGMA user_version = {number + 1}")
        raw.execute("COMMIT")
    except BaseException:
        raw.execute("ROLLBACK")
        raise


class SQLiteBackend:
    """The database file at `path`, opened (created and migrated when needed) at once."""

    name = "sqlite"
    concurrent_writes = False  # one writer at a time (the database's write lock)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._opened: list[SQLiteConnection] = []
        self._opened_lock = threading.Lock()
        self._writes = GroupCommit(self.connection)
        self._holding = False  # this process holds the send lock
        self.connection()  # create/migrate now: a bad path is an error before any work

    def __str__(self) -> str:
        return str(self.path)

    def connect(self, durable: bool = True) -> SQLiteConnection:
        """A new connection of its own (closed by `close()` at the latest). `durable=False`:
        its commits skip the fsync (they survive a killed process, not a power cut)."""
        conn = _open(self.path, durable)
        with self._opened_lock:
            self._opened.append(conn)
        return conn

    def connection(self) -> SQLiteConnection:
        """This thread's connection (a web server runs a fixed pool of threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.connect()
        return conn

    def write(self, fn: Callable[[SQLiteConnection], Any]) -> Any:
        """`fn(conn)` in a committed transaction, grouped with concurrent writes."""
        return self._writes.run(fn)

    @property
    def write_batches(self) -> int:
        return self._writes.batches

    def _lock_path(self) -> Path:
        return Path(f"{self.path.resolve()}-send.lock")  # one lock however the path is spelt

    @contextmanager
    def send_lock(self) -> Iterator[None]:
        """One full send at a time per database: a second one would mark the first one's
        in-flight rows unknown. An OS lock, so a killed process never leaves it stale."""
        fd = os.open(self._lock_path(), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            # A moment's patience: `status` tests the lock with a brief shared hold.
            deadline = time.monotonic() + 1.0
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise NewsletterError(
                            "another `newsletter send --all` is running on this database"
                            " (one send at a time on SQLite); wait for it to finish",
                            file=self.path) from None
                    time.sleep(0.05)
            self._holding = True
            try:
                yield
            finally:
                self._holding = False
        finally:
            os.close(fd)

    def send_running(self) -> bool:
        """Whether a full send holds the send lock now (this process's own included)."""
        if self._holding:
            return True
        try:
            fd = os.open(self._lock_path(), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # releases the shared hold at once
        return False

    def sender_alive(self, sender: Sender) -> bool:
        """A sender lives while its send holds the lock; only one send runs per database,
        so while this process holds it, every other sender is dead."""
        if self._holding:
            return sender.pid == os.getpid() and sender.host == socket.gethostname()
        return self.send_running()

    def durability_epoch(self) -> str:
        """Changes whenever commits made without an fsync may have been lost: this machine
        rebooted (its boot id; the database is a local file, so the OS that keeps its unsynced
        writes is this one)."""
        return f"{socket.gethostname()}/{boot_id()}"

    def close(self) -> None:
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()


class GroupCommit:
    """Many short writes from many request threads, committed together.

    A durable commit costs an fsync (synchronous=FULL: about 2 ms here), so committing each
    unsubscribe alone caps the server near 500 a second and makes waiting threads sleep in
    SQLite's busy handler (tens of ms). Instead each request queues its write; whichever thread
    holds the commit lock runs everything queued in ONE transaction (a savepoint per write, so
    one failing write does not undo the others) and one fsync. A request returns only after
    the transaction holding its write has committed: "you are unsubscribed" is never a promise
    a power cut could break.
    """

    def __init__(self, connect: Callable[[], SQLiteConnection], linger: float = 0.001) -> None:
        self._connect = connect
        self._queue: list[_Write] = []
        self._mutex = threading.Lock()  # guards _queue only (never held during I/O)
        self._commit = threading.Lock()  # one transaction at a time from this process
        self._linger = linger
        self._busy = False  # the last batch had company: writes are arriving concurrently
        self.batches = 0  # transactions committed (for the benchmark)

    def run(self, fn: Callable[[SQLiteConnection], Any]) -> Any:
        item = _Write(fn)
        with self._mutex:
            self._queue.append(item)
        with self._commit:
            if not item.done:  # else an earlier leader committed it while we waited
                if self._busy and self._linger:
                    # Under load, wait a moment so more writes share this fsync; when idle
                    # (the last batch was alone) a write is committed at once.
                    time.sleep(self._linger)
                with self._mutex:
                    batch, self._queue = self._queue, []
                self._busy = len(batch) > 1
                self.batches += 1
                self._run(batch)
        if item.error is not None:
            raise item.error
        return item.result

    def _run(self, batch: list[_Write]) -> None:
        try:
            conn = self._connect()
            with conn.transaction():
                if len(batch) == 1:  # the usual case when idle: no savepoint needed
                    batch[0].result = batch[0].fn(conn)
                else:
                    for item in batch:
                        conn.execute("SAVEPOINT w")
                        try:
                            item.result = item.fn(conn)
                        except Exception as exc:  # this write only; the others stand
                            conn.execute("ROLLBACK TO w")
                            item.error = exc
                        conn.execute("RELEASE w")
        except Exception as exc:  # no connection, BEGIN or COMMIT failed: nothing written
            for item in batch:
                item.error = item.error or exc
        finally:
            for item in batch:
                item.done = True


class _Write:
    __slots__ = ("fn", "result", "error", "done")

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False

"""SQLite: subscribers and the send ledger.

One database file (path from NEWSLETTER_DB) shared by the CLI and the web app, possibly at the
same moment, so: WAL mode, a busy timeout, autocommit connections and short explicit
transactions (`BEGIN IMMEDIATE` for every read-then-write, so two writers never deadlock).

The send ledger is what makes a send exactly-once (the listmonk lesson: a checkpoint that moves
when a batch is *fetched* loses or duplicates recipients). Each (issue, email) row moves

    pending -> in_flight -> sent | queued | rejected | failed | unknown

`in_flight` is committed (synchronous=FULL) *before* the provider is called, and the outcome is
written only after it answered. A row still `in_flight` when a send starts belongs to a process
that died mid-request: it may or may not have been delivered, so it becomes `unknown` and is
resent only on purpose (`send --retry-unknown`).
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

from newsletter.errors import StoreError

# Subscriber statuses
PENDING = "pending"  # signed up, not confirmed yet (double opt-in)
ACTIVE = "active"
UNSUBSCRIBED = "unsubscribed"
SUPPRESSED = "suppressed"  # bounced or complained: never send
SUBSCRIBER_STATUSES = (PENDING, ACTIVE, UNSUBSCRIBED, SUPPRESSED)

# Ledger states (anymail's vocabulary plus the two of our own loop)
IN_FLIGHT = "in_flight"
LEDGER_STATES = ("pending", IN_FLIGHT, "sent", "queued", "failed", "rejected", "unknown")
DONE_STATES = ("sent", "queued", "rejected")  # never sent again

_MIGRATIONS: list[str] = [
    # 1: the agreed schema (see /tmp/team.md); other modules write SQL against it.
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
    # scans of the issue's whole ledger); rows rarely enter it, so it costs a send nothing.
    """
    CREATE INDEX sends_unknown ON sends (issue) WHERE state = 'unknown';
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)


def now() -> str:
    """ISO-8601 UTC, second precision: the format of every time in the database."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating and migrating when needed) the database at `path`.

    The connection is in autocommit mode: single statements commit at once, and multi-step
    work uses `with transaction(conn):`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed `in_flight` survives a power cut, so it can never silently revert
        # to `pending` and be sent twice.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open the database: {exc}", file=path) from None
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else path.parent
        why = "a file is in the way" if isinstance(exc, FileExistsError) else exc.strerror
        raise StoreError(f"cannot create the database folder {where}: {why}"
                         " (set NEWSLETTER_DB to a writable path)", file=path) from None
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read inside the lock: another process may have migrated meanwhile.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version, SCHEMA_VERSION):
            for statement in _MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class transaction:
    """`with transaction(conn):` -> BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


# -- addresses -----------------------------------------------------------------------------


# A plain ASCII dot-atom address already in lower case: email-validator accepts it and
# normalises it to itself, so the hot paths (one-click unsubscribes, webhook batches, whose
# addresses we wrote ourselves) can skip its ~100 us per call.
_PLAIN = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)


def normalise_email(address: str) -> str:
    """Validate and normalise an address, or raise ValueError with the reason.

    email-validator checks the syntax (no DNS: check_deliverability=False) and normalises the
    domain (IDNA, lower case); we also lower-case the local part, because every mailbox
    provider that matters treats it case-insensitively and two rows for Ann@ and ann@ would
    mean two copies.
    """
    # (Not for an IDNA "xn--" domain: email-validator writes it in Unicode, and the slow path
    # must give the one spelling, or d@xn--bcher-kva.example and d@bücher.example would be two
    # subscribers and a webhook event for the former would match nobody.)
    if (len(address) <= 254 and _PLAIN.fullmatch(address)
            and len(address.partition("@")[0]) <= 64 and "xn--" not in address):
        return address
    from email_validator import EmailNotValidError, validate_email

    try:
        info = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return info.normalized.lower()


# -- subscribers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str | None
    status: str
    status_reason: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    unsubscribed_at: str | None = None
    consent_at: str | None = None
    consent_source: str | None = None
    consent_ip: str | None = None
    consent_form: str | None = None
    confirmed_at: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Subscriber:
        return cls(**{key: row[key] for key in row.keys()})


def get_subscriber(conn: sqlite3.Connection, email: str) -> Subscriber | None:
    row = conn.execute("SELECT * FROM subscribers WHERE email = ?", (email,)).fetchone()
    return Subscriber.from_row(row) if row else None


def add_subscriber(
    conn: sqlite3.Connection,
    email: str,
    name: str | None = None,
    *,
    status: str = ACTIVE,
    consent_source: str | None = None,
    consent_ip: str | None = None,
    consent_form: str | None = None,
    consent_at: str | None = None,
) -> Subscriber:
    """Insert a new subscriber (the address must already be normalised)."""
    if status not in SUBSCRIBER_STATUSES:
        raise StoreError(f"unknown subscriber status {status!r}", field="status")
    stamp = now()
    try:
        conn.execute(
            "INSERT INTO subscribers (email, name, status, created_at, updated_at, consent_at,"
            " consent_source, consent_ip, consent_form, confirmed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (email, name, status, stamp, stamp, consent_at or stamp, consent_source,
             consent_ip, consent_form, stamp if status == ACTIVE else None),
        )
    except sqlite3.IntegrityError:
        raise StoreError(f"{email} is already a subscriber", field="email") from None
    found = get_subscriber(conn, email)
    assert found is not None
    return found


def set_status(
    conn: sqlite3.Connection, email: str, status: str, reason: str | None = None
) -> bool:
    """Change a subscriber's status; False when there is no such address."""
    if status not in SUBSCRIBER_STATUSES:
        raise StoreError(f"unknown subscriber status {status!r}", field="status")
    stamp = now()
    unsubscribed_at = stamp if status in (UNSUBSCRIBED, SUPPRESSED) else None
    cur = conn.execute(
        "UPDATE subscribers SET status = ?, status_reason = ?, updated_at = ?,"
        " unsubscribed_at = CASE WHEN ? IS NULL THEN NULL"
        "   ELSE COALESCE(unsubscribed_at, ?) END"
        " WHERE email = ?",
        (status, reason, stamp, unsubscribed_at, unsubscribed_at, email),
    )
    return cur.rowcount > 0


def unsubscribe(conn: sqlite3.Connection, email: str, reason: str = "unsubscribed") -> bool:
    """Mark an address unsubscribed (idempotent; a suppressed address stays suppressed).

    Returns False when the address is not in the database. A send in progress checks the
    status of every recipient when it claims them, so this takes effect at once.
    """
    with transaction(conn):
        row = conn.execute("SELECT status FROM subscribers WHERE email = ?", (email,)).fetchone()
        if row is None:
            return False
        if row["status"] in (UNSUBSCRIBED, SUPPRESSED):
            return True
        set_status(conn, email, UNSUBSCRIBED, reason)
    return True


def list_subscribers(
    conn: sqlite3.Connection, status: str | None = None, batch: int = 1000
) -> Iterator[Subscriber]:
    """Every subscriber (or those with `status`) ordered by id, read in keyset pages."""
    for rows in _pages(conn, status, batch):
        yield from (Subscriber.from_row(r) for r in rows)


def active_batches(
    conn: sqlite3.Connection, batch: int = 1000
) -> Iterator[list[Subscriber]]:
    """Active subscribers in lists of `batch`, ordered by id; memory stays flat."""
    for rows in _pages(conn, ACTIVE, batch):
        yield [Subscriber.from_row(r) for r in rows]


def _pages(conn: sqlite3.Connection, status: str | None, batch: int) -> Iterator[list]:
    # Keyset pagination (id > last) rather than OFFSET: each page is an index seek, and rows
    # added or removed meanwhile never shift a page.
    last = 0
    where = "AND status = ?" if status else ""
    while True:
        params: tuple = (last, status, batch) if status else (last, batch)
        rows = conn.execute(
            f"SELECT * FROM subscribers WHERE id > ? {where} ORDER BY id LIMIT ?", params
        ).fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1]["id"]


def count_subscribers(conn: sqlite3.Connection) -> dict[str, int]:
    counts = dict.fromkeys(SUBSCRIBER_STATUSES, 0)
    for row in conn.execute("SELECT status, COUNT(*) FROM subscribers GROUP BY status"):
        counts[row[0]] = row[1]
    return counts


# -- the send ledger -----------------------------------------------------------------------


class Claimed(NamedTuple):
    """A ledger row taken for sending (state now in_flight). A tuple: a full send makes one
    per subscriber. `rowid` is the sends row's, valid while data_version says so (Ledger)."""

    email: str
    name: str | None
    rowid: int = 0


def recover_in_flight(conn: sqlite3.Connection, issue: str) -> int:
    """Rows left `in_flight` by a process that died mid-request become `unknown`.

    Call only while holding the send lock (see sender.py): a live send's rows are in flight too.
    """
    cur = conn.execute(
        "UPDATE sends SET state = 'unknown', updated_at = ?,"
        " last_error = 'the sending process stopped before the provider answered'"
        " WHERE issue = ? AND state = 'in_flight'",
        (now(), issue),
    )
    return cur.rowcount


def seed(conn: sqlite3.Connection, issue: str, chunk: int = 10_000) -> int:
    """A `pending` row for every active subscriber not yet in the ledger for this issue.

    Rows already present (sent, unknown, ...) are left alone (INSERT OR IGNORE), so rerunning
    adds only people who subscribed since. Written in id-ranged chunks: short transactions
    that never hold the write lock long against the web app. Returns the number added.
    """
    added = 0
    last = 0
    stamp = now()
    while True:
        with transaction(conn):
            upper = conn.execute(
                "SELECT MAX(id) FROM (SELECT id FROM subscribers WHERE id > ? AND status = ?"
                " ORDER BY id LIMIT ?)",
                (last, ACTIVE, chunk),
            ).fetchone()[0]
            if upper is None:
                return added
            cur = conn.execute(
                "INSERT OR IGNORE INTO sends (issue, email, state, attempts, updated_at)"
                " SELECT ?, email, 'pending', 0, ? FROM subscribers"
                " WHERE id > ? AND id <= ? AND status = ? ORDER BY id",
                (issue, stamp, last, upper, ACTIVE),
            )
            added += cur.rowcount
        last = upper


def requeue(conn: sqlite3.Connection, issue: str, states: Sequence[str]) -> int:
    """Put rows in `states` (e.g. failed, or unknown on purpose) back to pending."""
    for state in states:
        if state in DONE_STATES or state == IN_FLIGHT or state not in LEDGER_STATES:
            raise StoreError(f"refusing to requeue {state!r} rows", field="state")
    marks = ",".join("?" * len(states))
    cur = conn.execute(
        "UPDATE sends SET state = 'pending', updated_at = ?"
        f" WHERE issue = ? AND state IN ({marks})",
        (now(), issue, *states),
    )
    return cur.rowcount


Outcome = tuple[str, str, "str | None", "str | None"]  # (email, state, message_id, error)


def claim(
    conn: sqlite3.Connection, issue: str, limit: int, *, record: Sequence[Outcome] = ()
) -> tuple[list[Claimed], int]:
    """Take up to `limit` pending rows: mark them in_flight and return them.

    Anyone no longer active (unsubscribed or suppressed since the ledger was seeded) is
    dropped from the ledger instead: never sent, and not re-added by a rerun while inactive.
    Returns (claimed, skipped). One short transaction, committed before anything is sent.

    `record`: outcomes of the previous batch, written in the same transaction (one fsync per
    batch instead of two; until then those rows stay in_flight, which errs on the safe side).
    """
    with transaction(conn):
        if record:
            _write_outcomes(conn, issue, record)
        return _claim(conn, issue, limit)


def _claim(conn: sqlite3.Connection, issue: str, limit: int) -> tuple[list[Claimed], int]:
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: cheaper than sqlite3.Row for a whole batch
    rows = cursor.execute(_PENDING_SQL, (issue, limit)).fetchall()
    take = [Claimed(r[1], r[2], r[0]) for r in rows if r[3] == ACTIVE]
    drop = [r[0] for r in rows if r[3] != ACTIVE] if len(take) < len(rows) else []
    if drop:
        _in_rowids(conn, "DELETE FROM sends WHERE rowid IN ({})", (), drop)
    if take:
        _in_rowids(conn, "UPDATE sends SET state = 'in_flight', attempts = attempts + 1,"
                   " updated_at = ? WHERE rowid IN ({})", (now(),), [c.rowid for c in take])
    return take, len(drop)


T = TypeVar("T")

# (state, message_id, error, the Claimed rows with that outcome)
Outcomes = tuple[str, "str | None", "str | None", Sequence[Claimed]]


class Ledger:
    """One sending connection's batches of an issue: claim, then the outcomes.

    Like claim()/record(), but the outcomes come grouped by (state, message_id, error) (a
    SendGrid request gives all its recipients one), and they are written by rowid rather
    than by (issue, email): about a third cheaper. A rowid is trusted only while no other
    connection has committed anything since the batch was claimed (`PRAGMA data_version`
    unchanged, checked inside the write transaction: e.g. a VACUUM may renumber rows);
    otherwise the outcome is written by address.
    """

    def __init__(self, conn: sqlite3.Connection, issue: str) -> None:
        self.conn = conn
        self.issue = issue
        self._version: int | None = None  # data_version at the end of the last claim
        self._helper = None  # a one-thread pool, for claim(meanwhile=...)

    def claim(self, limit: int, outcomes: Sequence[Outcomes] = (),
              meanwhile: Callable[[list[Claimed]], T] | None = None
              ) -> tuple[list[Claimed], int, T | None]:
        """(claimed, skipped) as claim() gives them, after writing `outcomes`, and what
        `meanwhile(claimed)` returned (None when not called: nothing claimed).

        `meanwhile` (e.g. signing the batch's links and building its request) runs in this
        thread while a helper thread writes `outcomes` and commits, which is SQLite work
        and an fsync, done without the GIL. claim returns only once the commit is done, so
        nothing can be sent before its in_flight rows are durable; if the commit fails, the
        error is raised and what `meanwhile` made is dropped. If `meanwhile` raises, the
        batch goes back to pending (nothing of it was sent) and the error is raised.
        """
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            fresh = self._fresh()
            claimed, skipped = _claim(conn, self.issue, limit)
            version = self._data_version()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if meanwhile is None or not claimed:
            self._finish(outcomes, fresh)
            self._version = version
            return claimed, skipped, None
        if self._helper is None:
            from concurrent.futures import ThreadPoolExecutor

            self._helper = ThreadPoolExecutor(1, thread_name_prefix="ledger-commit")
        begun = threading.Event()
        finishing = self._helper.submit(self._finish, outcomes, fresh, begun)
        try:
            begun.wait()  # hand the GIL over: the helper is inside SQLite before we compute
            made = meanwhile(claimed)
            finishing.result()  # re-raises a failed write or commit
        except BaseException:  # e.g. a second Ctrl-C: these rows were certainly not sent
            # Wait for the helper even through another Ctrl-C (it holds the connection's
            # transaction); if its commit failed, it was all rolled back: nothing to undo.
            if _settled(finishing):
                self._version = version
                self.release(claimed)
            raise
        self._version = version
        return claimed, skipped, made

    def _finish(self, outcomes: Sequence[Outcomes], fresh: bool,
                begun: threading.Event | None = None) -> None:
        """Write the outcomes and commit the open transaction (ROLLBACK on any error)."""
        if begun is not None:
            begun.set()
        try:
            self._write(outcomes, fresh)
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # a failed COMMIT may have rolled back already
                self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._helper is not None:
            self._helper.shutdown(wait=True)
            self._helper = None

    def record(self, outcomes: Sequence[Outcomes]) -> None:
        if outcomes:
            with transaction(self.conn):
                self._write(outcomes, self._fresh())

    def release(self, rows: Sequence[Claimed]) -> None:
        release(self.conn, self.issue, [c.email for c in rows])

    def _fresh(self) -> bool:
        """No other connection has committed since the last claim (call in a transaction)."""
        return self._version is not None and self._data_version() == self._version

    def _data_version(self) -> int:
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def _write(self, outcomes: Sequence[Outcomes], by_rowid: bool) -> None:
        if not outcomes:
            return
        stamp = now()
        for state, mid, err, rows in outcomes:
            if by_rowid:
                _in_rowids(self.conn, "UPDATE sends SET state = ?, message_id = ?,"
                           " last_error = ?, updated_at = ?"
                           " WHERE rowid IN ({}) AND state = 'in_flight'",
                           (state, mid, err, stamp), [c.rowid for c in rows])
            else:
                _in_rowids(self.conn, "UPDATE sends SET state = ?, message_id = ?,"
                           " last_error = ?, updated_at = ?"
                           " WHERE issue = ? AND state = 'in_flight' AND email IN ({})",
                           (state, mid, err, stamp, self.issue), [c.email for c in rows])


def _settled(future) -> bool:
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


# The next pending rows of an issue, in claim order, with what a claim needs to know.
_PENDING_SQL = (
    "SELECT s.rowid, s.email, sub.name, sub.status FROM sends s"
    " LEFT JOIN subscribers sub ON sub.email = s.email"
    " WHERE s.issue = ? AND s.state = 'pending' ORDER BY s.rowid LIMIT ?"
)


def _in_rowids(conn, sql: str, params: tuple, values: Sequence, chunk: int = 5000) -> int:
    """One statement per `chunk` values (`IN (?, ...)`): far cheaper than executemany.
    Returns the number of rows changed."""
    changed = 0
    for start in range(0, len(values), chunk):
        part = values[start:start + chunk]
        changed += conn.execute(sql.format(",".join("?" * len(part))), (*params, *part)).rowcount
    return changed


def record(conn: sqlite3.Connection, issue: str, outcomes: Sequence[Outcome]) -> None:
    """Write (email, state, message_id, error) for rows this process has in flight."""
    with transaction(conn):
        _write_outcomes(conn, issue, outcomes)


def _write_outcomes(conn: sqlite3.Connection, issue: str, outcomes: Sequence[Outcome]) -> None:
    stamp = now()
    groups: dict[tuple, list[str]] = {}
    for email, state, mid, err in outcomes:
        groups.setdefault((state, mid, err), []).append(email)
    for (state, mid, err), emails in groups.items():
        _in_rowids(
            conn,
            "UPDATE sends SET state = ?, message_id = ?, last_error = ?, updated_at = ?"
            " WHERE issue = ? AND state = 'in_flight' AND email IN ({})",
            (state, mid, err, stamp, issue), emails,
        )


def release(conn: sqlite3.Connection, issue: str, emails: Sequence[str]) -> None:
    """In-flight rows that certainly were not sent go back to pending (e.g. after a 401)."""
    with transaction(conn):
        _in_rowids(conn, "UPDATE sends SET state = 'pending', updated_at = ?"
                   " WHERE issue = ? AND state = 'in_flight' AND email IN ({})",
                   (now(), issue), list(emails))


def ledger_counts(conn: sqlite3.Connection, issue: str) -> dict[str, int]:
    counts = dict.fromkeys(LEDGER_STATES, 0)
    for row in conn.execute(
        "SELECT state, COUNT(*) FROM sends WHERE issue = ? GROUP BY state", (issue,)
    ):
        counts[row[0]] = row[1]
    return counts


def unknown_count(conn: sqlite3.Connection, issue: str) -> int:
    """ledger_counts(...)["unknown"] through the partial index: no scan of the ledger."""
    return conn.execute(
        "SELECT COUNT(*) FROM sends WHERE issue = ? AND state = 'unknown'", (issue,)
    ).fetchone()[0]


def ledger_emails(
    conn: sqlite3.Connection, issue: str, state: str, limit: int | None = None
) -> list[str]:
    if state not in LEDGER_STATES:
        raise StoreError(f"unknown ledger state {state!r}", field="state")
    # The state written into the SQL (one of the constants above), not bound: only a
    # literal lets SQLite use the partial index of that state (pending, unknown).
    sql = f"SELECT email FROM sends WHERE issue = ? AND state = '{state}' ORDER BY rowid"
    params: tuple = (issue,)
    if limit is not None:
        sql += " LIMIT ?"
        params += (limit,)
    return [row[0] for row in conn.execute(sql, params)]


def event_counts(conn: sqlite3.Connection, issue: str) -> dict[str, int]:
    """Provider events for an issue (written by the web app's webhook), by event name."""
    return {
        row[0]: row[1]
        for row in conn.execute(
            "SELECT event, COUNT(*) FROM events WHERE issue = ? GROUP BY event", (issue,)
        )
    }


# -- test sends ----------------------------------------------------------------------------


def record_test_send(
    conn: sqlite3.Connection, issue: str, content_hash: str, recipients: Sequence[str]
) -> None:
    conn.execute(
        "INSERT INTO test_sends (issue, content_hash, recipients, sent_at) VALUES (?, ?, ?, ?)",
        (issue, content_hash, ", ".join(recipients), now()),
    )


def last_test_send(conn: sqlite3.Connection, issue: str) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT * FROM test_sends WHERE issue = ? ORDER BY id DESC LIMIT 1", (issue,)
    ).fetchone()

"""The PostgreSQL backend: one database shared by a team, several machines and `serve` instances.

Everything PostgreSQL-specific lives here: psycopg 3 connections in autocommit mode with short
explicit transactions (as on SQLite), the `?` -> `%s` translation of the table owners' portable
SQL, a connection pool (psycopg_pool) for the durable web writes, migrations under a
transaction-level advisory lock (two processes starting together migrate once), the send lock
(a session-level advisory lock: it dies with the session, so a killed sender is known to be dead
at once), and connection errors as one line that names the host and database, never the
password.

`sends` has an `id` column (the `row_id` of this backend: ids never change, so `change_mark()`
is constant) and claims skip rows another sender has locked (`FOR UPDATE SKIP LOCKED`).
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from newsletter.errors import StoreError
from newsletter.store.senders import Sender

MIGRATIONS: list[str] = [
    # 1: the first schema (the same tables and columns as SQLite's; times stay ISO text, so
    # both backends compare and return them identically). `sends.id` numbers rows in insertion
    # order, as SQLite's rowid does.
    """
    CREATE TABLE subscribers (
        id BIGSERIAL PRIMARY KEY,
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
        id BIGSERIAL UNIQUE,
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
        id BIGSERIAL PRIMARY KEY,
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
        timestamp BIGINT,
        reason TEXT,
        received_at TEXT
    );
    CREATE INDEX events_issue ON events (issue, event);
    """,
    # 2: only pending rows are indexed, in claim order.
    """
    DROP INDEX sends_issue_state;
    CREATE INDEX sends_pending ON sends (issue, id) WHERE state = 'pending';
    """,
    # 3: the few `unknown` rows, for the report at the end of every send.
    """
    CREATE INDEX sends_unknown ON sends (issue) WHERE state = 'unknown';
    """,
    # 4: provider events in the neutral vocabulary, unique per (provider, event_id).
    """
    CREATE TABLE provider_events (
        id BIGSERIAL PRIMARY KEY,
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
               to_char(to_timestamp(timestamp) AT TIME ZONE 'UTC',
                       'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               reason, event, COALESCE(event = 'bounce' AND reason = 'blocked', false)::int,
               received_at
        FROM events ORDER BY received_at;
    DROP TABLE events;
    ALTER TABLE provider_events RENAME TO events;
    ALTER INDEX provider_events_pkey RENAME TO events_pkey;
    CREATE INDEX events_issue ON events (issue, kind);
    """,
    # 5: the consent record of an imported export: the IP its tool saw the confirmation from,
    # and the file the subscriber came from.
    """
    ALTER TABLE subscribers ADD COLUMN confirm_ip TEXT;
    ALTER TABLE subscribers ADD COLUMN source_file TEXT;
    """,
    # 6: scheduled sends and stop requests (store/schedules.py).
    """
    CREATE TABLE schedules (
        id BIGSERIAL PRIMARY KEY,
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
    # Append the PostgreSQL DDL of every SQLite migration here, under the same number.
    # 7: who sends, and on each claimed row its sender, batch and send order (recovery).
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
    ALTER TABLE sends ADD COLUMN batch BIGINT;
    ALTER TABLE sends ADD COLUMN seq BIGINT;
    """,
    # 8: a send's state changes as heap-only (HOT) updates: no index holds `state`, not even
    # in a predicate, and pages keep room for the new row versions. Claims walk (issue, id)
    # from where the sender's last claim ended (Ledger), instead of a partial index of the
    # pending rows that every state change had to update. Statistics come from the ANALYZE
    # after each seed, when every row is pending, not from autovacuum in mid-send, when most
    # rows are sent and the pending ones would look rare. (A stall first blamed on that was
    # stale statistics of `subscribers`: see Ledger.seed.)
    """
    DROP INDEX sends_pending;
    DROP INDEX sends_unknown;
    CREATE INDEX sends_order ON sends (issue, id);
    ALTER TABLE sends SET (fillfactor = 30, autovacuum_analyze_scale_factor = 100);
    ALTER TABLE senders ADD COLUMN seeded INTEGER NOT NULL DEFAULT 0;
    """,
    # 9: fresh statistics for the senders and importers that do not own the tables (the
    # `newsletter_app` role of docs/deploying.md): only a table's owner may ANALYZE it, and
    # without the ANALYZE after a seed or an import a claim can be planned to read the whole
    # ledger, or every subscriber, for each batch. Runs as the owner; only these two tables;
    # `only_if_empty`: only when the statistics count no rows (never taken, or taken while a
    # bulk load was uncommitted), the case that makes the planner scan a table per row.
    """
    CREATE FUNCTION newsletter_analyze(name TEXT, only_if_empty BOOLEAN DEFAULT false)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    BEGIN
        IF name NOT IN ('subscribers', 'sends') THEN
            RAISE EXCEPTION 'newsletter_analyze: not a table it analyzes: %', name;
        END IF;
        IF only_if_empty AND (SELECT reltuples > 0 FROM pg_class
                              WHERE oid = format('%I', name)::regclass) THEN
            RETURN;
        END IF;
        EXECUTE format('ANALYZE %I', name);
    END
    $$;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

# Advisory lock keys (64-bit; any constant unlikely to collide with another application's).
_MIGRATE_LOCK = 0x6E65_7773_6D69_6772  # "newsmigr"
_SEND_LOCK = 0x6E65_7773_7365_6E64  # "newssend"


def _sender_key(sender_id: str) -> int:
    """A sender's own advisory lock key: 60 bits of a hash of its id, below 2**60 so it
    never meets the fixed keys above."""
    return int(hashlib.sha256(sender_id.encode()).hexdigest()[:15], 16)


def _seed_key(issue: str) -> int:
    return _sender_key(f"seed:{issue}")


CONNECT_TIMEOUT = 10  # seconds, unless the URL says otherwise


def is_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def describe(url: str) -> str:
    """The URL without its password (and without query parameters, which may hold one):
    what messages show."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable URL)"
    user = f"{info['user']}@" if info.get("user") else ""
    host = info.get("host") or info.get("hostaddr") or "localhost"
    if host.startswith("/"):
        host = f"[{host}]"
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{host}{port}/{info.get('dbname', '')}"


@functools.lru_cache(maxsize=512)
def _translate(sql: str) -> str:
    """The table owners' `?` placeholders as psycopg's `%s` (a literal % doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresConnection:
    """One psycopg connection in autocommit mode: single statements commit at once, and
    multi-step work runs in `with conn.transaction():` (BEGIN ... COMMIT)."""

    row_id = "id"
    # Claims skip rows another sender's open claim has locked instead of waiting for them.
    claim_lock = " FOR UPDATE OF s SKIP LOCKED"

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        return self.raw.execute(_translate(sql), tuple(params))

    def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        with self.raw.cursor() as cur:  # a ClientCursor (see PostgresBackend)
            cur.executemany(_translate(sql), list(rows))
            return cur.rowcount

    def execute_in(self, sql: str, params: Sequence[Any], values: Sequence[Any]) -> int:
        """`sql` with `IN ({})` for `values`: one statement with `= ANY(array)`, which
        psycopg need not parse a thousand placeholders for."""
        if not values:
            return 0
        if "IN ({})" in sql:
            if all(type(v) is int for v in values):
                # Row ids: the array as one text literal, made here in C (str.join) rather
                # than by psycopg's per-element dumper, about a millisecond a batch.
                return self.execute(sql.replace("IN ({})", "= ANY(?::bigint[])"),
                                    (*params, "{" + ",".join(map(str, values)) + "}")
                                    ).rowcount
            return self.execute(sql.replace("IN ({})", "= ANY(?)"),
                                (*params, list(values))).rowcount
        return self.execute(sql.format(",".join("?" * len(values))),
                            (*params, *values)).rowcount

    @contextmanager
    def transaction(self) -> Iterator[PostgresConnection]:
        """BEGIN ... COMMIT (ROLLBACK on any exception); joins a transaction already open."""
        if self.in_transaction:
            yield self
            return
        self.raw.execute("BEGIN")
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        self.raw.execute("COMMIT")

    def begin(self) -> None:
        self.raw.execute("BEGIN")

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction and not self.raw.closed:
            self.raw.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def change_mark(self) -> int:
        """Constant: ids of `sends` never change on PostgreSQL."""
        return 0

    def analyze(self, table: str, only_if_empty: bool = False) -> None:
        """Fresh statistics after a bulk insert: without them the planner takes a table just
        filled for nearly empty, and walks a claim's range whole instead of by index order.
        `subscribers` and `sends` through the owner's function (migration 9), so that roles
        that only read and write rows refresh them too."""
        if table in ("subscribers", "sends"):
            self.raw.execute("SELECT newsletter_analyze(%s, %s)", (table, only_if_empty))
        else:
            self.raw.execute(f'ANALYZE "{table}"')

    def close(self) -> None:
        self.raw.close()


def _reason(exc: psycopg.Error, url: str) -> str:
    """libpq's message reduced to its gist (never the password: libpq does not print it, and
    the URL's password is removed from the text in case a future version does)."""
    text = str(exc).strip()
    lowered = text.lower()
    info: dict[str, Any] = {}
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        pass
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        why = f"the server refused the password of user {info.get('user', '?')!r}"
    elif "does not exist" in lowered and "database" in lowered:
        why = f"the server has no database {info.get('dbname', '')!r}"
    elif ("connection refused" in lowered or "timeout" in lowered
          or "could not translate host name" in lowered or "no route to host" in lowered
          or "network is unreachable" in lowered or "name or service not known" in lowered):
        why = "the server cannot be reached"
        if "could not translate host name" in lowered or "not known" in lowered:
            why = "unknown host name"
        elif "timeout" in lowered:
            why = "the server did not answer in time"
    else:  # the last line of libpq's message, without its severity prefix
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        why = (lines[-1] if lines else type(exc).__name__).removeprefix("FATAL:").strip()
    password = info.get("password")
    if password:
        why = why.replace(password, "***")
    return why


class PostgresBackend:
    """The database at `url` (libpq parameters such as `sslmode` pass through), reached and
    migrated at once so a wrong URL or password is an error before any work."""

    name = "postgresql"
    concurrent_writes = True  # writers on several connections proceed side by side

    def __init__(self, url: str, *, pool_size: int = 16) -> None:
        self.url = url
        self.where = describe(url)
        # Parameters bound client-side: the portable SQL has untyped parameters (`? IS NULL`,
        # `COALESCE(?, name)`) that server-side binding cannot type, and SQLite accepts.
        self._kwargs: dict[str, Any] = {"autocommit": True,
                                        "cursor_factory": psycopg.ClientCursor}
        try:
            info = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            # libpq quotes the whole URL in its message: never show it (the password).
            why = str(exc).replace(f'"{url}"', "").replace(url, "").strip().rstrip(":")
            raise StoreError(f"not a valid PostgreSQL URL: {why.removesuffix(' in URI')}",
                             file=self.where) from None
        if "connect_timeout" not in info:
            self._kwargs["connect_timeout"] = CONNECT_TIMEOUT
        self._pool_size = pool_size
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        self._local = threading.local()
        self._opened: list[PostgresConnection] = []
        self._opened_lock = threading.Lock()
        self._send_session: psycopg.Connection | None = None  # while send_lock() is held
        self.migrated = migrate(self.connection())  # (version before, version after)

    def __str__(self) -> str:
        return self.where

    def _raw(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.url, **self._kwargs)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect: {_reason(exc, self.url)}",
                             file=self.where) from None

    def connect(self, durable: bool = True) -> PostgresConnection:
        """A new connection of its own (closed by `close()` at the latest). `durable=False`:
        its commits return before the WAL is flushed (synchronous_commit off: they survive
        the client's death, not a server crash; see durability_epoch)."""
        raw = self._raw()
        if not durable:
            raw.execute("SET synchronous_commit = off")
            raw.commit()
        conn = PostgresConnection(raw)
        with self._opened_lock:
            self._opened.append(conn)
        return conn

    def connection(self) -> PostgresConnection:
        """This thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.raw.closed:
            conn = self._local.conn = self.connect()
        return conn

    def _get_pool(self) -> ConnectionPool:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url, min_size=1, max_size=self._pool_size, kwargs=self._kwargs,
                    open=True, name="newsletter", timeout=30)
            return self._pool

    def write(self, fn: Callable[[PostgresConnection], Any]) -> Any:
        """`fn(conn)` on a pooled connection in autocommit mode: each statement commits on
        its own (the server's own group commit makes concurrent small commits cheap) unless
        `fn` opens a transaction, as the table owners do where several changes must be all or
        nothing. So a one-statement write (a one-click unsubscribe) is one round trip, not
        four (BEGIN, the statement, COMMIT and the pool's check)."""
        try:
            with self._get_pool().connection() as raw:
                return fn(PostgresConnection(raw))
        except PoolTimeout:
            raise StoreError("no database connection free in time", file=self.where) from None

    @contextmanager
    def send_lock(self) -> Iterator[bool]:
        """Senders share a send on PostgreSQL: each holds the send lock SHARED on a session of
        its own for as long as it runs (the lock dies with the session, so a killed sender is
        known to be dead at once). Yields True when no other sender is alive (the exclusive
        lock was free a moment): only then are rows left in flight certainly a dead sender's,
        and may be recovered. Claims skip each other's rows (`claim_lock`)."""
        conn = self._raw()
        conn.autocommit = True
        try:
            conn.execute("SELECT pg_advisory_lock_shared(%s)", (_SEND_LOCK,))
            # One's own shared lock does not conflict with one's exclusive request.
            alone = conn.execute("SELECT pg_try_advisory_lock(%s)", (_SEND_LOCK,)).fetchone()
            if alone and alone[0]:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_SEND_LOCK,))
            self._send_session = conn
            try:
                yield bool(alone and alone[0])
            finally:
                self._send_session = None
            # Released before closing: the server ends a closed session a moment later, and
            # until then this sender would still count as alive.
            conn.execute("SELECT pg_advisory_unlock_all()")
        finally:
            conn.close()

    # The seed lock: senders of one issue seed its ledger one at a time (deliver/sender.py),
    # held on the send lock's session, so a killed sender releases it at once.
    def try_seed_lock(self, issue: str) -> bool:
        row = self._session().execute("SELECT pg_try_advisory_lock(%s)",
                                      (_seed_key(issue),)).fetchone()
        return bool(row and row[0])

    def seed_unlock(self, issue: str) -> None:
        self._session().execute("SELECT pg_advisory_unlock(%s)", (_seed_key(issue),))

    def seeding_elsewhere(self, issue: str) -> bool:
        """Whether a live session holds the issue's seed lock."""
        row = self.connection().execute(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND mode = 'ExclusiveLock' AND objsubid = 1"
            " AND ((classid::bigint << 32) | objid::bigint) = ?"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (_seed_key(issue),)).fetchone()
        return bool(row and row[0])

    def _session(self) -> psycopg.Connection:
        session = self._send_session
        if session is None:
            raise StoreError("the ledger is seeded outside the send lock", file=self.where)
        return session

    def hold_sender(self, sender: Sender) -> None:
        """Mark `sender` (this process's, just registered) alive for as long as its send lock
        session lives: an exclusive advisory lock keyed by its id on that session. Call
        inside send_lock(), before the sender claims anything."""
        session = self._send_session
        if session is None:
            raise StoreError("a sender is registered outside the send lock", file=self.where)
        session.execute("SELECT pg_advisory_lock(%s)", (_sender_key(sender.id),))

    def sender_alive(self, sender: Sender) -> bool:
        """Whether a live session holds that sender's own lock (see hold_sender): known at
        once after a kill -9, whoever else is sending."""
        row = self.connection().execute(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND mode = 'ExclusiveLock' AND objsubid = 1"
            " AND ((classid::bigint << 32) | objid::bigint) = ?"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (_sender_key(sender.id),)).fetchone()
        return bool(row and row[0])

    def durability_epoch(self) -> str:
        """Changes whenever commits made with synchronous_commit off may have been lost: the
        server restarted (postmaster start time) or reinitialised itself after a crashed
        backend (shared statistics are reset then: the bgwriter's stats_reset), or it is
        another cluster (system identifier, where this role may read it)."""
        conn = self._raw()
        conn.autocommit = True
        try:
            row = conn.execute(
                "SELECT pg_postmaster_start_time()::text,"
                " pg_stat_get_bgwriter_stat_reset_time()::text").fetchone()
            epoch = f"{row[0]}/{row[1]}" if row else ""
            try:
                ident = conn.execute(
                    "SELECT system_identifier FROM pg_control_system()").fetchone()
            except psycopg.Error:  # needs superuser or pg_monitor on some servers
                ident = None
            return f"{ident[0] if ident else 'cluster'}/{epoch}"
        except psycopg.Error as exc:
            raise StoreError(f"cannot read the server's state: {_reason(exc, self.url)}",
                             file=self.where) from None
        finally:
            conn.close()

    def senders(self) -> int:
        """How many senders are running on this database now (live sessions holding the
        send lock)."""
        row = self.connection().execute(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND mode = 'ShareLock' AND ((classid::bigint << 32) | objid::bigint) = ?"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (_SEND_LOCK,)).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


def schema_version(conn: PostgresConnection) -> int:
    """The schema version of the database (0: nothing created yet)."""
    found = conn.execute("SELECT to_regclass('newsletter_schema')").fetchone()
    if not found or found[0] is None:
        return 0
    row = conn.execute("SELECT version FROM newsletter_schema").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: PostgresConnection) -> tuple[int, int]:
    """Bring the schema up to date; (version before, version after). Under a transaction-level
    advisory lock, so concurrent starters wait and then find the work done."""
    if schema_version(conn) >= SCHEMA_VERSION:
        version = schema_version(conn)
        return version, version
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATE_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS newsletter_schema (version INTEGER NOT NULL)")
        before = schema_version(conn)
        if conn.execute("SELECT COUNT(*) FROM newsletter_schema").fetchone()[0] == 0:
            conn.execute("INSERT INTO newsletter_schema (version) VALUES (0)")
        for number in range(before, SCHEMA_VERSION):
            conn.raw.execute(MIGRATIONS[number])  # several statements: no parameters
            conn.execute("UPDATE newsletter_schema SET version = ?", (number + 1,))
    return before, SCHEMA_VERSION

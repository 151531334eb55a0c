"""`db migrate` and `db copy`: the schema brought up to date, and a whole database copied
into an empty one (SQLite <-> PostgreSQL), verified by counts per table."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from newsletter.errors import StoreError
from newsletter.store import Store, open_store, postgres
from newsletter.store.common import Connection

# Bookkeeping of a backend, never copied (the target has its own, already up to date).
_SKIP = {"newsletter_schema", "sqlite_sequence"}
CHUNK = 5000


@dataclass(frozen=True)
class Copied:
    table: str
    source: int
    target: int


def schema_version(conn: Connection) -> int:
    if isinstance(conn, postgres.PostgresConnection):
        return postgres.schema_version(conn)
    return conn.execute("PRAGMA user_version").fetchone()[0]


def tables(conn: Connection) -> list[str]:
    """The tables of the database, in name order."""
    if isinstance(conn, postgres.PostgresConnection):
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            " ORDER BY table_name").fetchall()
    else:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                            " AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
    return [r[0] for r in rows if r[0] not in _SKIP]


def columns(conn: Connection, table: str) -> list[str]:
    if isinstance(conn, postgres.PostgresConnection):
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ?"
            " ORDER BY ordinal_position", (table,)).fetchall()
        return [r[0] for r in rows]
    return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]


def count(conn: Connection, table: str) -> int:
    return conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]


def copy_database(source: Connection, target: Connection,
                  progress: Callable[[str, int], None] | None = None) -> list[Copied]:
    """Every table of `source` into the empty `target` (both migrated to the same schema
    version), in ONE transaction on the target: all or nothing. Rows keep their ids and
    their order; counts are compared per table before the commit."""
    have, want = schema_version(source), schema_version(target)
    if have != want:
        raise StoreError(f"the source has schema version {have} and the target {want}:"
                         " run `newsletter db migrate` on the older one first")
    names = tables(source)
    missing = [n for n in names if n not in tables(target)]
    if missing:
        raise StoreError(f"the target has no table {', '.join(missing)}")
    busy = [n for n in tables(target) if count(target, n)]
    if busy:
        raise StoreError("the target database is not empty (rows in "
                         f"{', '.join(busy)}): `db copy` only fills an empty database")
    done: list[Copied] = []
    with target.transaction():
        for name in names:
            wanted = columns(target, name)
            shared = [c for c in columns(source, name) if c in wanted]
            own = columns(source, name)
            if "id" in own or not isinstance(source, postgres.PostgresConnection):
                order = "id" if "id" in own else source.row_id  # insertion order
            else:
                order = ", ".join(f'"{c}"' for c in own)
            quoted = ", ".join(f'"{c}"' for c in shared)
            insert = (f'INSERT INTO "{name}" ({quoted}) VALUES'
                      f' ({", ".join("?" * len(shared))})')
            rows = source.execute(f'SELECT {quoted} FROM "{name}" ORDER BY {order}').fetchall()
            for start in range(0, len(rows), CHUNK):
                target.execute_many(insert, rows[start:start + CHUNK])
            if isinstance(target, postgres.PostgresConnection) and "id" in wanted:
                # Explicit ids leave the id sequence behind: move it past the copied rows.
                target.execute(
                    f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'),"
                    f' COALESCE((SELECT MAX(id) FROM "{name}"), 0) + 1, false)')
            copied = Copied(name, len(rows), count(target, name))
            if copied.source != copied.target:
                raise StoreError(f"{name}: {copied.source} rows read but {copied.target}"
                                 " in the target: nothing was copied")
            done.append(copied)
            if progress:
                progress(name, len(rows))
    for name in names:  # the planner's view of the tables just filled (see Ledger.seed)
        target.analyze(name)
    return done


def open_source(where: str | Path) -> Store:
    """SOURCE (a path that must exist, or a URL), migrated like the target."""
    if not postgres.is_url(where) and not Path(where).is_file():
        raise StoreError("no such database file", file=where)
    return open_store(where)


def migrate_database(where: str | Path) -> tuple[int, int]:
    """Bring the schema of the database at `where` up to date: (version before, after)."""
    if postgres.is_url(where):
        with open_store(where) as store:  # migrates on opening, and says from which version
            return store.backend.migrated
    path = Path(where)
    before = 0
    if path.is_file():
        raw = sqlite3.connect(path)
        try:
            before = raw.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError:
            before = 0  # open_store names the problem
        finally:
            raw.close()
    with open_store(path) as store:
        return before, schema_version(store.conn)

"""The PostgreSQL backend's own behaviour: migrations once under a lock, pooled web writes,
parameters passed through the URL."""

from __future__ import annotations

import threading

from newsletter.store import describe, open_store
from newsletter.store.postgres import SCHEMA_VERSION, schema_version


def test_processes_starting_together_migrate_once(postgres_url):
    opened, errors = [], []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(open_store(postgres_url))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors
        migrated = sorted(s.backend.migrated for s in opened)
        assert migrated.count((0, SCHEMA_VERSION)) == 1  # one migrated, three found it done
        assert schema_version(opened[0].conn) == SCHEMA_VERSION
    finally:
        for store in opened:
            store.close()


def test_web_writes_run_on_pooled_connections(postgres_url):
    with open_store(postgres_url) as store:
        store.subscribers.add("a@example.org")
        results = []

        def unsubscribe(i: int) -> None:
            results.append(store.write(
                lambda tx: tx.subscribers.unsubscribe(f"u{i}@example.org", "link")))

        threads = [threading.Thread(target=unsubscribe, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == ["recorded"] * 20  # none of them was on the list
        assert store.subscribers.counts()["unsubscribed"] == 20


def test_libpq_parameters_pass_through_and_are_not_shown(postgres_url):
    url = postgres_url + "?sslmode=disable&application_name=newsletter-test"
    with open_store(url) as store:
        name = store.conn.execute("SELECT current_setting('application_name')").fetchone()[0]
        assert name == "newsletter-test"
    password = postgres_url.split(":")[2].split("@")[0]
    shown = describe(url)
    assert password not in shown and "sslmode" not in shown and shown.startswith(
        "postgresql://newsletter@127.0.0.1:")


def test_every_sqlite_migration_has_its_postgresql_ddl():
    """Same schema version numbers on both backends (a `db copy` needs them equal)."""
    from newsletter.store import sqlite

    assert SCHEMA_VERSION == sqlite.SCHEMA_VERSION


def _claim_plan(store, issue: str) -> str:
    ledger = store.ledger(issue)
    sql = ledger._pending_sql.replace("?", "%s")
    rows = store.conn.raw.execute("EXPLAIN " + sql, (issue, 0, 1000)).fetchall()
    return "\n".join(r[0] for r in rows)


def test_claims_join_by_index_after_statistics_taken_mid_import(postgres_url):
    """Autovacuum may analyze the subscribers while a bulk load is uncommitted: it counts
    them as none until its next round, and a claim planned meanwhile compared each ledger row
    with every subscriber (a 3 s send took 60). The seed takes fresh statistics."""
    import psycopg

    with open_store(postgres_url) as store:
        with store.conn.transaction():
            store.conn.execute_many(
                "INSERT INTO subscribers (email, name, status, created_at, updated_at)"
                " VALUES (?, ?, 'active', '2026-01-01', '2026-01-01')",
                ((f"r{i:05d}@example.org", f"R {i}") for i in range(5000)))
            with psycopg.connect(postgres_url, autocommit=True) as other:
                other.execute("ANALYZE subscribers")  # sees the rows as uncommitted
        reltuples = "SELECT reltuples FROM pg_class WHERE relname = 'subscribers'"
        assert store.conn.execute(reltuples).fetchone()[0] == 0  # the trap is set
        store.ledger("2011-05").seed(chunk=1000)
        assert store.conn.execute(reltuples).fetchone()[0] == 5000
        plan = _claim_plan(store, "2011-05")
        assert "Join Filter" not in plan and "Materialize" not in plan, plan


def test_imports_leave_fresh_statistics(postgres_url):
    import psycopg

    with open_store(postgres_url) as store:
        with psycopg.connect(postgres_url, autocommit=True) as other:
            other.execute("ANALYZE subscribers")  # of the empty table
            store.subscribers.add_many(((f"r{i}@example.org", None) for i in range(3000)), "t")
            assert other.execute("SELECT reltuples FROM pg_class"
                                 " WHERE relname = 'subscribers'").fetchone()[0] == 3000


def test_a_role_that_only_writes_rows_refreshes_the_statistics(postgres_url):
    """docs/deploying.md's `newsletter_app` owns no table, and PostgreSQL lets only a table's
    owner ANALYZE it (for anyone else it is skipped with a warning): the seed and imports
    refresh them through the owner's function (migration 9)."""
    import uuid

    import psycopg
    from psycopg import sql

    open_store(postgres_url).close()  # migrated by the owner
    role = f"app_{uuid.uuid4().hex[:12]}"  # roles belong to the cluster, shared by tests
    app_url = postgres_url.replace("://newsletter:", f"://{role}:", 1)
    password = postgres_url.split(":")[2].split("@")[0]
    dbname = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_url, autocommit=True) as owner:
        owner.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
                      .format(sql.Identifier(role), sql.Literal(password)))
        owner.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}")
                      .format(sql.Identifier(dbname), sql.Identifier(role)))
        owner.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA"
                              " public TO {}").format(sql.Identifier(role)))
        owner.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}")
                      .format(sql.Identifier(role)))
    try:
        with open_store(app_url) as store:
            assert store.conn.execute("SELECT current_user").fetchone()[0] == role
            store.subscribers.add_many(((f"r{i}@example.org", None) for i in range(2000)), "t")
            store.ledger("2011-05").seed(chunk=500)
            tuples = dict(store.conn.execute(
                "SELECT relname, reltuples FROM pg_class"
                " WHERE relname IN ('subscribers', 'sends')").fetchall())
            assert tuples == {"subscribers": 2000, "sends": 2000}
            try:
                store.conn.execute("SELECT newsletter_analyze('senders')")
            except psycopg.errors.RaiseException as exc:
                assert "not a table it analyzes" in str(exc)
            else:
                raise AssertionError("the function analyzed another table")
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as owner:
            owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            owner.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

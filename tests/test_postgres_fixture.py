"""The throwaway PostgreSQL server of tests/support/postgres.py works (the store tests use it)."""

from __future__ import annotations

import os
import urllib.parse

import psycopg
import pytest

from tests.support.postgres import Cluster


def test_a_fresh_database_answers_and_is_dropped_afterwards(postgres_cluster: Cluster,
                                                            postgres_url: str) -> None:
    parts = urllib.parse.urlsplit(postgres_url)
    assert parts.hostname == "127.0.0.1" and parts.port == postgres_cluster.port
    name = parts.path.lstrip("/")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SELECT current_database()").fetchone() == (name,)
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                            ).fetchone() == (0,)  # empty
        conn.execute("CREATE TABLE t (x int)")
    with psycopg.connect(postgres_cluster.url, autocommit=True) as admin:
        admin.execute("CREATE DATABASE made_by_hand")
        with psycopg.connect(postgres_cluster.url_for("made_by_hand")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        admin.execute("DROP DATABASE made_by_hand")


def test_the_password_is_required(postgres_cluster: Cluster) -> None:
    wrong = postgres_cluster.url.replace(postgres_cluster.password, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong).close()


def test_the_server_does_not_run_as_root(postgres_cluster: Cluster) -> None:
    with psycopg.connect(postgres_cluster.url) as conn:
        folder = conn.execute("SHOW data_directory").fetchone()[0]
    owner = os.stat(folder).st_uid
    assert owner != 0
    assert str(folder).startswith(str(postgres_cluster.folder))

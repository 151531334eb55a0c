"""Fixtures shared by every test file. Helpers for one family live in tests/support/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import postgres

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("NEWSLETTER_SHARED", ROOT.parent / "shared"))
SEED_ISSUE = ROOT / "issues" / "2011-05.yaml"

# Variables a test must never inherit from the developer's shell or .env.
_ENV_PREFIXES = ("NEWSLETTER_", "SENDGRID_", "SMTP_")


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or skip the test with the reason when this clone has none."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is only beside the project in CI and sessions)")
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
            ) -> Path:
    """A throwaway copy of the project (settings, templates, the seed issue) as the cwd, with a
    clean environment: file provider, outbox, database and secret all inside tmp_path.

    SpamAssassin is off (a second or more per check run, in every send and check test) except
    in tests marked `spamassassin`, the ones about the spam check."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(ROOT / "newsletter.toml", root / "newsletter.toml")
    shutil.copytree(ROOT / "templates", root / "templates")
    (root / "issues").mkdir()
    if SEED_ISSUE.exists():
        shutil.copy(SEED_ISSUE, root / "issues" / SEED_ISSUE.name)
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(root / "newsletter.toml"))
    monkeypatch.setenv("NEWSLETTER_OUTBOX", str(root / "outbox"))
    monkeypatch.setenv("NEWSLETTER_DB", str(root / "newsletter.db"))
    monkeypatch.setenv("NEWSLETTER_SECRET", "test-secret-not-for-production")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    if request.node.get_closest_marker("spamassassin") is None:
        monkeypatch.setenv("NEWSLETTER_SPAMASSASSIN", "off")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def settings(project: Path):
    from newsletter.config import load_settings

    return load_settings(project / "newsletter.toml")


@pytest.fixture
def seed_issue(project: Path) -> Path:
    path = project / "issues" / "2011-05.yaml"
    if not path.exists():
        pytest.fail("issues/2011-05.yaml is missing from the project")
    return path


# -- PostgreSQL -----------------------------------------------------------------------------
# Tests that use these fixtures are marked `postgres` and, where no server binaries are
# installed, skipped with the reason (at collection, before any fixture runs).
_POSTGRES_FIXTURES = {"postgres_cluster", "postgres_url"}
_PG_BINDIR = postgres.find_bindir()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        # Each browser test starts Chromium (about a second): they run in the full suite,
        # not in the `-m "not slow"` inner loop.
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.slow)
        if _POSTGRES_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)
            if _PG_BINDIR is None:
                item.add_marker(pytest.mark.skip(reason=postgres.missing_reason()))


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[postgres.Cluster]:
    """One throwaway PostgreSQL server for the session (see tests/support/postgres.py)."""
    if _PG_BINDIR is None:
        pytest.skip(postgres.missing_reason())
    with postgres.Cluster.start(_PG_BINDIR) as cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres_cluster: postgres.Cluster) -> Iterator[str]:
    """`postgresql://user:password@127.0.0.1:PORT/test_...`: a fresh empty database."""
    with postgres_cluster.database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where an empty store lives: a SQLite file in tmp_path, or a fresh PostgreSQL database
    (skipped with the reason when no server binaries are installed)."""
    if request.param == "sqlite":
        return tmp_path / "store" / "newsletter.db"
    if _PG_BINDIR is None:
        pytest.skip(postgres.missing_reason())
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_target: str | Path):
    """An empty store, once per backend: tests written against the Store's public interface
    run on SQLite and on PostgreSQL."""
    from newsletter.store import open_store

    opened = open_store(store_target)
    yield opened
    opened.close()

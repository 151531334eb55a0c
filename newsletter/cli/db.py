"""`newsletter db migrate` / `db copy SOURCE`: the database's schema and moving a newsletter
between SQLite and PostgreSQL."""

from __future__ import annotations

import click

from newsletter.cli.common import load_settings, reports_errors


@click.group()
def db() -> None:
    """The database (NEWSLETTER_DB: a SQLite path or a postgresql:// URL).

    \b
    Example:
      newsletter db migrate
      NEWSLETTER_DB=postgresql://newsletter@db.example.org/news newsletter db copy newsletter.db
    """


@db.command()
@reports_errors
def migrate() -> None:
    """Bring the database's schema up to date (every command also does this on first use).

    \b
    Example:
      newsletter db migrate
    """
    from newsletter.store import describe
    from newsletter.store.copying import migrate_database

    settings = load_settings()
    before, after = migrate_database(settings.db_path)
    where = describe(settings.db_path)
    if before == after:
        click.echo(f"{where}: schema version {after}, up to date")
    else:
        click.echo(f"{where}: schema migrated from version {before} to {after}")


@db.command()
@click.argument("source")
@reports_errors
def copy(source: str) -> None:
    """Copy everything (subscribers and consent, ledger, test sends, events, schedules...)
    from SOURCE (a SQLite path or a postgresql:// URL) into the EMPTY database of
    NEWSLETTER_DB, in one transaction, verified by counts per table.

    \b
    Example:
      NEWSLETTER_DB=postgresql://newsletter@db.example.org/news newsletter db copy newsletter.db
      NEWSLETTER_DB=old-copy.db newsletter db copy postgresql://newsletter@db.example.org/news
    """
    from newsletter.errors import StoreError
    from newsletter.store import describe, open_store
    from newsletter.store.copying import copy_database, open_source

    settings = load_settings()
    if describe(source) == describe(settings.db_path):
        raise StoreError("SOURCE is NEWSLETTER_DB itself: nothing to copy", file=describe(source))
    with open_source(source) as src, open_store(settings.db_path) as target:
        copied = copy_database(src.conn, target.conn)
    click.echo(f"copied {describe(source)} -> {describe(settings.db_path)}")
    width = max((len(c.table) for c in copied), default=5)
    for c in copied:
        click.echo(f"  {c.table:<{width}}  {c.target:>9,} rows (source {c.source:,})")


COMMANDS = [db]

"""`newsletter subscribers ...`: import, list, remove, show (over newsletter.store)."""

from __future__ import annotations

import click

from newsletter.cli.common import UserError, load_settings, reports_errors
from newsletter.cli.progress import terminal_progress


def _open():
    from newsletter.store import open_store
    return open_store(load_settings())


def _address(email: str) -> str:
    from newsletter.store import normalise_email
    try:
        return normalise_email(email)
    except ValueError as exc:
        raise UserError(f"invalid address {email!r}: {exc}") from None


@click.group("subscribers")
def subscribers() -> None:
    """Manage the subscriber list (in the SQLite database at NEWSLETTER_DB).

    \b
    Example:
      newsletter subscribers import members.csv
      newsletter subscribers list --status active
      newsletter subscribers show ann@example.org
      newsletter subscribers remove ann@example.org
    """


@subscribers.command("import")
@click.argument("file", metavar="FILE.csv")
@click.option("--resubscribe", is_flag=True,
              help="Re-activate addresses that unsubscribed or were suppressed (only with "
                   "their fresh consent). Per row: a 'resubscribe' column with yes/true/1.")
@reports_errors
def import_(file: str, resubscribe: bool) -> None:
    """Add or update subscribers from a UTF-8 CSV with an 'email' column (optional 'name').

    Addresses are validated and normalised; bad rows are reported by line and skipped.
    Importing again updates names and never duplicates anyone. Someone who unsubscribed
    stays unsubscribed unless their row has resubscribe=yes or --resubscribe is given.
    The consent record is 'import:<file name>' at the time of the import. On a terminal,
    a progress bar (rows and rows/s) is shown on stderr while the file is read.

    \b
    Example:
      newsletter subscribers import members.csv
      newsletter subscribers import returning.csv --resubscribe
    """
    from newsletter.subscribers.importing import import_csv

    with _open() as store:
        # a terminal only: piped output is unchanged
        with terminal_progress("importing", unit="rows") as progress:
            summary = import_csv(store, file, resubscribe=resubscribe, progress=progress)
    lines = summary.lines()
    click.echo(f"{file}: {lines[0]}")
    for line in lines[1:]:
        click.echo(f"{file}:{line}", err=True)
    if summary.kept_unsubscribed:
        click.echo(f"{len(summary.kept_unsubscribed)} address(es) stay unsubscribed"
                   " (add resubscribe=yes to their rows to re-activate them)", err=True)


@subscribers.command("list")
@click.option("--status", type=click.Choice(["pending", "active", "unsubscribed", "suppressed"]),
              help="Only subscribers with this status.")
@reports_errors
def list_(status: str | None) -> None:
    """List subscribers, one per line: email, status, name (tab-separated).

    \b
    Example:
      newsletter subscribers list
      newsletter subscribers list --status unsubscribed
    """
    with _open() as store:
        n = 0
        for s in store.subscribers.list(status=status):
            click.echo(f"{s.email}\t{s.status}\t{s.name or ''}")
            n += 1
    click.echo(f"{n} subscriber(s)", err=True)


@subscribers.command("remove")
@click.argument("email")
@reports_errors
def remove(email: str) -> None:
    """Unsubscribe EMAIL (kept as unsubscribed, so no import re-adds it by accident).

    An address that is not on the list is recorded as unsubscribed, so that a later import
    cannot start mailing it.

    \b
    Example:
      newsletter subscribers remove ann@example.org
    """
    from newsletter.subscribers.lifecycle import unsubscribe
    address = _address(email)
    with _open() as store:
        done = unsubscribe(store, address, "removed with `newsletter subscribers remove`")
    if done.outcome == "recorded":
        click.echo(f"{address}: not on the list; recorded as unsubscribed (no import will"
                   " add it)")
    elif done.outcome == "already":
        click.echo(f"{address}: already unsubscribed")
    else:
        click.echo(f"{address}: unsubscribed")


@subscribers.command("show")
@click.argument("email")
@reports_errors
def show(email: str) -> None:
    """Show one subscriber with their status and consent record.

    \b
    Example:
      newsletter subscribers show ann@example.org
    """
    address = _address(email)
    with _open() as store:
        found = store.subscribers.get(address)
    if found is None:
        raise UserError(f"{address}: not a subscriber")
    for key in ("email", "name", "status", "status_reason", "created_at", "updated_at",
                "unsubscribed_at", "consent_at", "consent_source", "consent_ip", "consent_form",
                "confirmed_at"):
        value = getattr(found, key)
        click.echo(f"{key + ':':<17}{'' if value is None else value}")


COMMANDS = [subscribers]

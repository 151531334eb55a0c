"""`newsletter subscribers ...`: import, export, list, remove, show (over newsletter.store)."""

from __future__ import annotations

import sys
from pathlib import Path

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
      newsletter subscribers export subscribers.csv
      newsletter subscribers list --status active
      newsletter subscribers show ann@example.org
      newsletter subscribers remove ann@example.org
    """


@subscribers.command("import")
@click.argument("file", metavar="FILE.csv")
@click.option("--email-column", metavar="COL",
              help="The column that holds the address (for a CSV no format is recognised in).")
@click.option("--name-column", metavar="COL", help="The column that holds the name.")
@click.option("--resubscribe", is_flag=True,
              help="Re-activate addresses that unsubscribed or were suppressed (only with "
                   "their fresh consent). Per row: a 'resubscribe' column with yes/true/1.")
@reports_errors
def import_(file: str, email_column: str | None, name_column: str | None,
            resubscribe: bool) -> None:
    """Add or update subscribers from a CSV file.

    FILE.csv is an export of Mailchimp, Substack, listmonk or Buttondown as it comes (recognised
    by its header), a file written by `newsletter subscribers export`, or any CSV with an
    'email' column (optional 'name'); for other column names use --email-column and
    --name-column. Comma, semicolon or tab separated; UTF-8 with or without a BOM.

    Each export's consent record (opt-in and confirmation times and IP addresses) is kept,
    with the file it came from. Rows the export marks as unsubscribed, cleaned, blocklisted or
    disabled are imported as unsubscribed or suppressed, never active. Importing again updates
    names and never duplicates anyone; someone who unsubscribed here stays unsubscribed unless
    their row has resubscribe=yes or --resubscribe is given. Bad rows are reported by line and
    skipped. On a terminal, a progress bar is shown on stderr.

    \b
    Example:
      newsletter subscribers import subscribed_members_export_6f2c1a.csv
      newsletter subscribers import unsubscribed_members_export_6f2c1a.csv
      newsletter subscribers import crm.csv --email-column "E-mail" --name-column "Full name"
      newsletter subscribers import returning.csv --resubscribe
    """
    from newsletter.subscribers.importing import import_csv

    with _open() as store:
        # a terminal only: piped output is unchanged
        with terminal_progress("importing", unit="rows") as progress:
            summary = import_csv(store, file, resubscribe=resubscribe, progress=progress,
                                 email_column=email_column, name_column=name_column)
    lines = summary.lines()
    click.echo(f"{file} ({summary.format}): {lines[0]}")
    for line in lines[1:]:
        click.echo(f"{file}:{line}", err=True)
    if summary.kept_count:
        click.echo(f"{summary.kept_count} address(es) stay unsubscribed"
                   " (add resubscribe=yes to their rows to re-activate them)", err=True)


@subscribers.command("export")
@click.argument("file", metavar="[FILE.csv]", required=False,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--status", type=click.Choice(["pending", "active", "unsubscribed", "suppressed"]),
              help="Only subscribers with this status.")
@reports_errors
def export(file: Path | None, status: str | None) -> None:
    """Write every subscriber with status and consent record as CSV (stdout without FILE).

    The file imports back unchanged with `newsletter subscribers import`. It holds personal
    data: keep it as carefully as the database.

    \b
    Example:
      newsletter subscribers export subscribers.csv
      newsletter subscribers export --status unsubscribed > unsubscribed.csv
    """
    from newsletter.subscribers.importing import export_csv

    with _open() as store:
        if file is None:
            n = export_csv(store, sys.stdout, status=status)
        else:
            n = _export_to(store, file, status)
    click.echo(f"{n} subscriber(s){' to ' + str(file) if file else ''}", err=True)


def _export_to(store, file: Path, status: str | None) -> int:
    """Written beside FILE and renamed over it: a failure leaves no half-written file."""
    import os
    import tempfile

    from newsletter.subscribers.importing import export_csv

    folder = file.resolve().parent
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{file.name}.", dir=folder)
    except OSError as exc:
        raise UserError(f"{file}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            n = export_csv(store, out, status=status)
        os.chmod(temp, 0o600)  # personal data
        os.replace(temp, file)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return n


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
                "confirmed_at", "confirm_ip", "source_file"):
        value = getattr(found, key)
        click.echo(f"{key + ':':<17}{'' if value is None else value}")


COMMANDS = [subscribers]

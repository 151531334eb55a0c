"""`newsletter build` and `newsletter new`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from newsletter.cli.common import load_settings, reports_errors


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


@click.command()
@click.argument("issues", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", default="build", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for <slug>.html and <slug>.txt.")
@reports_errors
def build(issues: tuple[Path, ...], out: Path) -> None:
    """Render issues to responsive HTML (CSS inlined) and plain text.

    Nothing is written unless every issue renders.

    \b
    Example:
      newsletter build issues/2011-05.yaml
      newsletter build issues/*.yaml --out public/
    """
    from newsletter.compose.building import build_issues

    for built in build_issues(issues, load_settings(), out):
        click.echo(f"{built.slug}: {built.html_path} ({_kb(built.html_bytes)}), "
                   f"{built.text_path} ({_kb(built.text_bytes)})")
        if built.warning:
            click.echo(f"warning: {built.slug}: {built.warning}", err=True)


@click.command()
@click.option("--date", "date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Issue date (YYYY-MM-DD). Default: the first day of next month.")
@reports_errors
def new(date: dt.datetime | None) -> None:
    """Write a new issue file for a month from the skeleton.

    \b
    Example:
      newsletter new                    # next month: issues/YYYY-MM.yaml
      newsletter new --date 2011-06-15  # issues/2011-06.yaml
    """
    from newsletter.compose.building import new_issue, next_month

    day = date.date() if date else next_month(dt.date.today())
    path = new_issue(load_settings(), day)
    click.echo(f"wrote {path}")


COMMANDS = [build, new]

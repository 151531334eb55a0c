"""`newsletter archive`: the static web archive of every issue, with an Atom feed."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.common import load_settings, reports_errors
from newsletter.cli.progress import terminal_progress


@click.command()
@click.option("--out", "out", default="site", show_default=True,
              type=click.Path(path_type=Path),
              help="Folder to write (replaced as a whole, only once everything rendered).")
@click.option("--include-future", is_flag=True,
              help="Also publish issues dated after today (left out by default: drafts).")
@reports_errors
def archive(out: Path, include_future: bool) -> None:
    """Write a static web archive of every issue in issues/ with an Atom feed.

    index.html (newest first, by year), <slug>.html per issue (the email without its
    personal parts) and feed.xml. Publish the folder at [links] archive. Issues dated after
    today are drafts and are left out unless --include-future. On a terminal, stderr shows
    the issues rendered so far.

    \b
    Example:
      newsletter archive
      newsletter archive --out public/archive
    """
    import datetime as dt

    from newsletter.compose.archive import build_archive

    settings = load_settings()
    until = None if include_future else dt.date.today()
    with terminal_progress("rendering issues", unit="issues", transient=True) as progress:
        pages = build_archive(settings, out, progress=progress, until=until)
    click.echo(f"wrote {out}/: index.html, feed.xml and {len(pages)} issue page"
               f"{'' if len(pages) == 1 else 's'}")


COMMANDS = [archive]

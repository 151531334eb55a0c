"""`newsletter add`: a story from a web page's title, description and picture."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.common import reports_errors


@click.command()
@click.argument("issue", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("url")
@click.option("--featured", is_flag=True,
              help="Add it as a featured story (with the page's picture) instead of to "
                   "More Stories.")
@reports_errors
def add(issue: Path, url: str, featured: bool) -> None:
    """Add the page at URL to ISSUE as a story, from its Open Graph and meta tags.

    The title, address and description (and, with --featured, the picture and its alt
    text) come from the page. The file keeps its comments and layout; it is left as it
    was if the page cannot be read (a 404, no answer within 15 s, more than 2 MB or 5
    redirects, not a web page).

    \b
    Example:
      newsletter add issues/2011-06.yaml https://citiesofmigration.ca/ezine_stories/maximum-cities/
      newsletter add issues/2011-06.yaml https://citiesofmigration.ca/webinar/x/ --featured
    """
    from newsletter.compose.adding import add_story

    added = add_story(issue, url, featured=featured)
    where = "featured" if featured else "More Stories"
    click.echo(f"Added to {where} ({added.field}) in {issue}:")
    for key, value in added.story.items():
        if key == "image":
            click.echo(f"  image.src: {value['src']}")
            click.echo(f"  image.alt: {value['alt']}")
        else:
            shown = value if len(value) <= 200 else value[:199] + "…"
            click.echo(f"  {key}: {shown}")
    for note in added.notes:
        click.echo(f"Check: {note}")


COMMANDS = [add]

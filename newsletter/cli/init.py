"""`newsletter init`: start a newsletter folder (over newsletter.project)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from newsletter.cli.common import UserError, reports_errors


def _checked(make):
    """A click value_proc: the answer, or click asks again with the settings' own message."""

    def proc(value: str) -> str:
        from newsletter.errors import ConfigError
        from newsletter.project import validate

        value = value.strip()
        try:
            validate(make(value))
        except ConfigError as exc:
            raise click.UsageError(str(exc).split(": ", 1)[-1]) from None
        return value

    return proc


@click.command()
@click.argument("folder", metavar="[DIR]", default=".",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="The newsletter's name (subject lines, From name, footer).")
@click.option("--from", "from_email", metavar="EMAIL",
              help="The address issues are sent from, e.g. news@example.org.")
@click.option("--address", metavar="TEXT",
              help="Your organisation's postal address (required in every message).")
@click.option("--public-url", metavar="URL",
              help="Where `newsletter serve` will be reachable (unsubscribe links).")
@click.option("--yes", "-y", is_flag=True,
              help="Ask nothing: placeholders for what is not given (`newsletter check` "
                   "reports them until you replace them in newsletter.toml).")
@click.option("--templates", is_flag=True,
              help="Also copy the default templates into templates/ for editing.")
@reports_errors
def init(folder: Path, name: str | None, from_email: str | None, address: str | None,
         public_url: str | None, yes: bool, templates: bool) -> None:
    """Start a newsletter in DIR (default: the current folder).

    Writes newsletter.toml (the settings, commented), issues/, .env with a freshly generated
    NEWSLETTER_SECRET (readable by you only) and a .gitignore that keeps .env, the database,
    build/, outbox/ and site/ out of git. Asks for what the options do not give, unless --yes.
    Never overwrites a file: existing ones are kept and listed.

    \b
    Example:
      newsletter init acme-news
      newsletter init --name "Acme News" --from news@acme.example --yes
      newsletter init . --templates
    """
    from newsletter.compose.building import next_month
    from newsletter.project import (
        PLACEHOLDER_ADDRESS,
        PLACEHOLDER_FROM,
        PLACEHOLDER_PUBLIC,
        Answers,
        create_project,
        default_name,
    )

    base = Answers(name=name or default_name(folder))
    if not yes:
        if name is None:
            name = click.prompt("Newsletter name", default=base.name,
                                value_proc=_checked(lambda v: Answers(name=v)))
        if from_email is None:
            from_email = click.prompt(
                "From address (issues are sent from it)", default=PLACEHOLDER_FROM,
                value_proc=_checked(lambda v: Answers(name="x", from_email=v)))
        if address is None:
            address = click.prompt(
                "Postal address (shown in every message)", default=PLACEHOLDER_ADDRESS,
                value_proc=_checked(lambda v: Answers(name="x", postal_address=v)))
        if public_url is None:
            public_url = click.prompt(
                "Public URL of `newsletter serve` (unsubscribe links)",
                default=PLACEHOLDER_PUBLIC,
                value_proc=_checked(lambda v: Answers(name="x", public_url=v)))
    answers = Answers(name=name or base.name, from_email=from_email or PLACEHOLDER_FROM,
                      postal_address=address or PLACEHOLDER_ADDRESS,
                      public_url=public_url or PLACEHOLDER_PUBLIC)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    result = create_project(folder, answers, templates=templates)

    def show(paths: list[Path]) -> str:
        top = [p for p in paths if p.parent == folder]
        inside = len(paths) - len(top)  # the copied templates
        names = [p.name + ("/" if p.is_dir() else "") for p in top]
        if inside:
            names.append(f"templates/ ({inside} files)")
        return ", ".join(names)

    if result.written:
        click.echo(f"wrote in {folder}: {show(result.written)}")
    if result.kept:
        click.echo(f"kept (already there, not changed): {show(result.kept)}", err=True)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    unfinished = [label for value, label in (
        (answers.from_email == PLACEHOLDER_FROM, "sender.from_email"),
        (answers.postal_address == PLACEHOLDER_ADDRESS, "newsletter.postal_address"),
        (answers.public_url == PLACEHOLDER_PUBLIC, "links.public")) if value]
    if unfinished:
        click.echo(f"placeholders to replace in newsletter.toml before a real send: "
                   f"{', '.join(unfinished)} (`newsletter check` reports them)", err=True)
    issue = f"issues/{next_month(dt.date.today()):%Y-%m}.yaml"
    cd = "" if folder.resolve() == Path.cwd().resolve() else f"cd {folder}\n  "
    click.echo(f"\nNext:\n  {cd}newsletter new\n  newsletter build {issue}\n"
               f"  newsletter send {issue} --test")


COMMANDS = [init]

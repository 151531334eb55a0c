"""`newsletter schedule list|cancel`, `newsletter run-scheduled` and `newsletter stop`."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.common import UserError, load_settings, reports_errors


def _slug(issue_path: str) -> str:
    return Path(issue_path).name.removesuffix(".yaml").removesuffix(".yml")


@click.group("schedule")
def schedule() -> None:
    """Scheduled sends: list them, or cancel one that has not started.

    A send is scheduled with `newsletter send ISSUE.yaml --all --at TIME`.

    \b
    Example:
      newsletter schedule list
      newsletter schedule cancel issues/2011-05.yaml
    """


@schedule.command("list")
@click.option("--all", "show_all", is_flag=True,
              help="Also finished, cancelled, missed and refused ones (default: the last 20).")
@reports_errors
def list_schedules(show_all: bool) -> None:
    """Show scheduled sends: issue, time (in newsletter.timezone), state, who scheduled it.

    \b
    Example:
      newsletter schedule list
    """
    from newsletter.deliver.schedule import describe
    from newsletter.deliver.scheduled import zone
    from newsletter.store import open_store

    settings = load_settings()
    with open_store(settings) as store:
        items = store.schedules.all()
    if not show_all:
        items = items[-20:]
    if not items:
        click.echo("No scheduled sends (schedule one with `newsletter send ISSUE.yaml --all"
                   " --at TIME`).")
        return
    where = zone(settings)
    rows = [(s.issue, describe(s.at, where), s.state, s.scheduled_by, s.detail or "")
            for s in items]
    head = ("issue", "time", "state", "scheduled by", "detail")
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(4)]
    for row in (head, *rows):
        click.echo(("  ".join(v.ljust(w) for v, w in zip(row[:4], widths, strict=True))
                    + "  " + row[4]).rstrip())


@schedule.command("cancel")
@click.argument("issue", metavar="ISSUE.yaml")
@reports_errors
def cancel(issue: str) -> None:
    """Cancel the scheduled send of ISSUE that has not started yet.

    A send already running is stopped with `newsletter stop ISSUE.yaml` instead.

    \b
    Example:
      newsletter schedule cancel issues/2011-05.yaml
    """
    from newsletter.deliver.schedule import describe, who
    from newsletter.deliver.scheduled import zone
    from newsletter.store import open_store

    settings = load_settings()
    slug = _slug(issue)
    with open_store(settings) as store:
        done = store.schedules.cancel(slug, who())
        running = [s for s in store.schedules.all(issue=slug) if s.state == "running"]
    if done is None:
        hint = (" (its scheduled send is running: `newsletter stop` stops it)" if running
                else "")
        raise UserError(f"{slug}: no scheduled send waiting to be cancelled{hint}")
    click.echo(f"Cancelled the send of {slug} scheduled for {describe(done.at, zone(settings))}.")


@click.command("run-scheduled")
@reports_errors
def run_scheduled() -> None:
    """Start every scheduled send that is due, once, then exit (for cron or a systemd timer).

    Each scheduled send starts once even when several timers or `newsletter serve`
    processes share the database. One not started within 6 hours of its time is marked
    `missed` and not sent. Exit status 1 when a due send was refused, missed or failed.

    \b
    Example (crontab, every 5 minutes):
      */5 * * * *  cd /srv/newsletter && newsletter run-scheduled
    """
    from newsletter.deliver.schedule import State
    from newsletter.deliver.scheduled import run_due

    settings = load_settings()
    outcomes = run_due(settings)
    if not outcomes:
        click.echo("Nothing due.")
    for o in outcomes:
        told = "" if o.reviewers_told else " (the reviewers could not be told)"
        click.echo(f"{o.schedule.issue}: {o.state}: {o.detail}{told}")
    if any(o.state is not State.DONE for o in outcomes):
        raise UserError("not every due send went out (see above and `newsletter schedule"
                        " list`)")


@click.command("stop")
@click.argument("issue", metavar="ISSUE.yaml")
@reports_errors
def stop(issue: str) -> None:
    """Ask every running send of ISSUE to stop after its current batch.

    Works through the database: it reaches a send in another process or on another
    machine sharing it. The ledger stays consistent; `newsletter send ISSUE.yaml --all`
    resumes later, sending only to those who do not have it yet.

    \b
    Example:
      newsletter stop issues/2011-05.yaml
    """
    from newsletter.deliver.stopping import request_stop

    settings = load_settings()
    slug = _slug(issue)
    request_stop(settings, slug)
    click.echo(f"Asked every running send of {slug} to stop after its current batch"
               " (`newsletter status` shows where it stopped; `send --all` resumes).")


COMMANDS = [schedule, run_scheduled, stop]

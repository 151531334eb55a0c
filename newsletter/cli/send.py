"""`newsletter send` and `newsletter status`: thin wrappers over deliver.sender and store."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.common import UserError, load_settings, reports_errors
from newsletter.cli.progress import terminal_bar, terminal_progress

STATE_ORDER = ("sent", "queued", "failed", "rejected", "unknown", "pending")
# (label, neutral event kinds summed)
EVENT_ROWS = (
    ("delivered", ("delivered",)),
    ("deferred", ("deferred",)),
    ("bounced", ("bounced", "rejected")),
    ("complained", ("complained",)),
    ("opened", ("opened",)),
    ("clicked", ("clicked",)),
)


def _render(issue_path: str, settings):
    from newsletter.compose.issue import load_issue
    from newsletter.compose.render import render_issue

    return render_issue(load_issue(issue_path), settings)


def _slug(issue_path: str) -> str:
    return Path(issue_path).name.removesuffix(".yaml").removesuffix(".yml")


@click.command("send")
@click.argument("issue", metavar="ISSUE.yaml")
@click.option("--test", "test", is_flag=True, help="Send to the reviewers (or --to).")
@click.option("--all", "to_all", is_flag=True, help="Send to every active subscriber.")
@click.option("--to", "to", multiple=True, metavar="EMAIL",
              help="With --test: send to this address instead of the reviewers (repeatable).")
@click.option("--yes", is_flag=True, help="With --all: do not ask for confirmation.")
@click.option("--force", is_flag=True,
              help="With --all: send even if the checks find errors or reviewers have not "
                   "seen this exact content.")
@click.option("--retry-unknown", is_flag=True,
              help="With --all: resend recipients whose earlier outcome is unknown "
                   "(they may receive two copies).")
@click.option("--offline", is_flag=True,
              help="With --all: run the pre-send checks without requesting links.")
@click.option("--sample", metavar="N|P%",
              help="With --all: send to a random sample of the subscribers who do not have "
                   "this issue yet (a number, or a percentage such as 5%); a later --all "
                   "without it sends the rest.")
@click.option("--at", "at", metavar="TIME",
              help="With --all: check now, then send at TIME (ISO 8601, e.g. "
                   "\"2026-11-03 09:00\", in newsletter.timezone unless it has an offset).")
@reports_errors
def send(issue: str, test: bool, to_all: bool, to: tuple[str, ...], yes: bool, force: bool,
         retry_unknown: bool, offline: bool, sample: str | None, at: str | None) -> None:
    """Send ISSUE as a test to reviewers, or to every subscriber, exactly once each.

    A send to all is resumable: run the same command again after an interruption and it
    continues where it stopped; nobody gets a second copy. Recipients whose outcome is
    unknown (the process died while their request was in flight) are listed and resent
    only with --retry-unknown.

    \b
    Example:
      newsletter send issues/2011-05.yaml --test
      newsletter send issues/2011-05.yaml --test --to me@example.org
      newsletter send issues/2011-05.yaml --all
      newsletter send issues/2011-05.yaml --all --yes --retry-unknown
      newsletter send issues/2011-05.yaml --all --sample 5%
      newsletter send issues/2011-05.yaml --all --at "2026-11-03 09:00"
    """
    if test == to_all:  # neither, or both: never guess which audience was meant
        raise click.UsageError("choose one of --test (reviewers) or --all (every subscriber)")
    mode = "test" if test else "all"
    if mode == "test" and (yes or force or retry_unknown or offline):
        raise click.UsageError("--yes, --force, --retry-unknown and --offline go with --all")
    if mode == "all" and to:
        raise click.UsageError("--to goes with --test; --all sends to every subscriber")
    if mode == "test" and (sample or at):
        raise click.UsageError("--sample and --at go with --all")
    if sample and at:
        raise click.UsageError("--sample sends now: send the sample first, then schedule the"
                               " rest with --at")
    if sample:
        _sample_size(sample, 1)  # a malformed size is an error before the slow part
    settings = load_settings()
    if mode == "test":
        _send_test(issue, settings, list(to))
    else:
        _send_all(issue, settings, yes=yes, force=force, retry_unknown=retry_unknown,
                  offline=offline, sample=sample, at=at)


def _send_test(issue: str, settings, to: list[str]) -> None:
    from newsletter.deliver import sender
    from newsletter.deliver.campaign import Status
    from newsletter.deliver.providers import provider_class

    if to:  # a bad address is an error before the (slow) render
        sender.validate_addresses(to, "--to")
    rendered = _render(issue, settings)
    results = sender.send_test(rendered, settings, to=to or None)
    ok = [r.email for r in results if r.status in (Status.SENT, Status.QUEUED)]
    where = provider_class(settings).describe(settings)
    if ok:
        click.echo(f"Test of {rendered.slug} sent {where} to: " + ", ".join(ok))
    bad = [r for r in results if r.status not in (Status.SENT, Status.QUEUED)]
    for r in bad:
        click.echo(f"{r.email}: {r.status.value}" + (f": {r.error}" if r.error else ""), err=True)
    if bad:
        raise UserError(f"{len(bad)} of {len(results)} test copies were not accepted")


def _sample_size(spec: str, count: int) -> int:
    """N, or P% of `count` (rounded up: 5% of 10 is 1), from --sample."""
    text = spec.strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 < share <= 100:
                raise ValueError
            return max(1, -int(-count * share // 100))
        number = int(text)
        if number < 1:
            raise ValueError
        return number
    except ValueError:
        raise click.BadParameter("give a number of subscribers (e.g. 500) or a percentage"
                                 " above 0 (e.g. 5%)", param_hint="--sample") from None


def _send_all(issue: str, settings, *, yes: bool, force: bool, retry_unknown: bool,
              offline: bool, sample: str | None = None, at: str | None = None) -> None:
    from newsletter.deliver import scheduled, sender
    from newsletter.deliver.preflight import preflight, settings_problems
    from newsletter.deliver.schedule import describe, parse_at
    from newsletter.deliver.stopping import watching

    when = parse_at(at, scheduled.zone(settings)) if at else None  # before the slow part

    # Configuration mistakes are errors before the render, the checks and the question:
    # the signing key, the public address, the provider and its settings (nothing connects).
    for problem in settings_problems(settings):
        raise UserError(problem.message)
    rendered = _render(issue, settings)
    with terminal_progress("checking links and images", unit="URLs", transient=True) as progress:
        found = preflight(rendered, settings, retry_unknown=retry_unknown, offline=offline,
                          progress=progress)
    for f in found.check_errors:
        click.echo(f"check error: {f.category}: {f.message}"
                   + (f" ({f.where})" if f.where else ""), err=True)
    if found.review is not None and found.review.same_content:
        click.echo(f"Reviewers saw exactly this content (test send {found.review.sent_at} to "
                   f"{found.review.recipients}).")
    fatal = found.blocking(force=True)
    if fatal:
        raise UserError("; ".join(p.message for p in fatal))
    blocking = found.blocking(force)
    if blocking:
        raise UserError("refusing to send: " + "; ".join(p.message for p in blocking)
                        + " (--force sends anyway)")
    for p in found.problems:
        click.echo(f"warning (--force): {p.message}", err=True)
    count, active = found.recipients, found.active
    size = _sample_size(sample, count) if sample else None
    if when is not None:
        made = scheduled.create(settings, rendered, str(Path(issue).resolve()), when,
                                offline=offline, force=force)
        click.echo(f"Scheduled {made.issue} for {describe(made.at, scheduled.zone(settings))}"
                   f" ({count} recipient(s) now) by {made.scheduled_by}. At that time it is"
                   " rendered and checked again and sent only if unchanged; `newsletter serve`"
                   " or `newsletter run-scheduled` starts it. Cancel with `newsletter schedule"
                   f" cancel {issue}`.")
        return
    if not yes:
        click.echo(f"Subject: {rendered.subject}")
        already = f" ({active - count} already have it)" if active != count else ""
        if size is not None:
            click.echo(f"Recipients: a random sample of {min(size, count)} of the {count}"
                       f" subscribers who do not have it yet{already} {found.where}")
        else:
            click.echo(f"Recipients: {count} of {active} active subscribers{already}"
                       f" {found.where}")
        try:
            confirmed = click.confirm("Send now?", default=False)
        except click.Abort:  # no terminal / end of input counts as no
            confirmed = False
        if not confirmed:
            raise UserError("not confirmed: nothing was sent (use --yes to skip the question)")

    stop, restore = _stop_on_ctrl_c()
    progress, finish = _progress_reporter()
    try:
        with watching(settings, rendered.slug, stop) as watch:  # `newsletter stop`
            report = sender.send_all(rendered, settings, retry_unknown=retry_unknown,
                                     progress=progress, stop=stop, sample=size)
    finally:
        finish()
        restore()
    if watch.requested:
        click.echo(f"Stop requested by {watch.requested} (`newsletter stop`).", err=True)
    _print_report(report, issue, sample=size)


def _print_report(report, issue: str, sample: int | None = None) -> None:
    parts = ", ".join(f"{n} {name}" for name, n in (
        ("sent", report.sent), ("queued", report.queued), ("rejected", report.rejected),
        ("failed", report.failed), ("unknown", report.unknown)) if n)
    click.echo(f"{report.issue}: {report.done} of {report.to_send} answered this run"
               f" ({parts or 'nothing to send'}) in {report.elapsed:.1f} s"
               f" ({report.rate:.0f}/s); {report.already_done} done by earlier runs.")
    if report.skipped:
        click.echo(f"{report.skipped} skipped: unsubscribed or suppressed since the send began.")
    for note in report.recovery_notes:
        click.echo(f"Recovery: {note}.")
    recovered = report.recovered_unknown + report.recovered_pending + report.recovered_sent
    if recovered:
        click.echo(f"{recovered} were in flight when an earlier send stopped:"
                   f" {report.recovered_unknown} may have been on the wire (now unknown),"
                   f" {report.recovered_sent} shown to have arrived (sent),"
                   f" {report.recovered_pending} never attempted (sent now).")
    if report.unknown_total:
        more = report.unknown_total - len(report.unknown_sample)
        click.echo(f"{report.unknown_total} recipient(s) with an unknown outcome (the provider may"
                   " or may not have accepted them):", err=True)
        for email in report.unknown_sample:
            click.echo(f"  {email}", err=True)
        if more > 0:
            click.echo(f"  ... and {more} more (all of them: newsletter status"
                       f" {issue} --unknown)", err=True)
    if sample is not None and not report.stopped:
        click.echo("That was a sample: `newsletter send ISSUE.yaml --all` sends the rest,"
                   " once each.")
    if report.stopped:
        raise UserError("stopped: the ledger is consistent; run the same command again to"
                        " continue")
    if report.unknown_total:
        raise UserError("not everyone is known to have it: check the provider's activity log,"
                        " then rerun with --retry-unknown to resend those on purpose")
    if report.failed:
        # Certainly not sent (a 4xx, the server gone mid-batch): not a complete send.
        raise UserError(f"{report.failed} recipient(s) failed (certainly not accepted):"
                        " run the same command again to retry them")


def _stop_on_ctrl_c():
    """First Ctrl-C: finish the current batch and stop. A second: stop at once."""
    import signal
    import threading

    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return stop, lambda: None

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo("\nStopping after the current batch (Ctrl-C again to stop at once)...",
                   err=True)

    previous = signal.signal(signal.SIGINT, handler)
    return stop, lambda: signal.signal(signal.SIGINT, previous)


def _progress_reporter():
    """(callback, finish): a rich bar on a terminal, plain lines otherwise."""
    bar = terminal_bar("sending", fields=("states",))
    if bar is not None:
        def update(report) -> None:
            states = f"unknown {report.unknown} failed {report.failed}" if (
                report.unknown or report.failed) else ""
            bar.update(report.done, report.to_send, rate=report.rate, states=states)

        return update, bar.close

    def plain(report) -> None:
        if report.done or report.to_send == 0:
            accepted = report.sent + report.queued
            click.echo(f"sent {accepted}, other {report.done - accepted}"
                       f" ({report.done}/{report.to_send}, {report.rate:.0f}/s)", err=True)
        else:
            click.echo(f"sending {report.to_send} ...", err=True)

    return plain, lambda: None


@click.command("status")
@click.argument("issue", metavar="ISSUE.yaml")
@click.option("--unknown", "list_unknown", is_flag=True,
              help="Print every address whose outcome is unknown, one per line (nothing else).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@reports_errors
def status(issue: str, list_unknown: bool, as_json: bool) -> None:
    """Show what the send ledger knows about ISSUE, and the provider's events.

    "in flight" counts messages of a send running now; rows left in flight by a send that
    stopped (killed, crashed) show as "interrupted": the next send settles them.

    \b
    Example:
      newsletter status issues/2011-05.yaml
      newsletter status issues/2011-05.yaml --unknown > unknown.txt
      newsletter status issues/2011-05.yaml --json
    """
    import json

    from newsletter.deliver.events import EventKind
    from newsletter.deliver.recovery import in_flight_now
    from newsletter.store import open_store
    from newsletter.subscribers.lifecycle import issue_stats

    if list_unknown and as_json:
        raise click.UsageError("choose one of --unknown and --json")
    settings = load_settings()
    slug = _slug(issue)
    with open_store(settings) as store:
        if list_unknown:
            for email in store.ledger(slug).emails("unknown"):
                click.echo(email)
            return
        stats = issue_stats(store, slug)
        live, interrupted = in_flight_now(store, slug)
        unknown = store.ledger(slug).emails("unknown", 20)
        senders = store.senders()
    counts = stats.ledger
    total = sum(counts.values())
    if total == 0 and not Path(issue).exists():
        # A typo (issues/2011-5.yaml) should not look like an issue nobody was sent;
        # a deleted issue file with a ledger still reports its ledger.
        raise UserError(f"{issue}: file not found (and no send of '{slug}' in the ledger)")
    if as_json:
        ledger = {state: counts[state] for state in STATE_ORDER}
        ledger.update(in_flight=live, interrupted=interrupted)
        events = {label: stats.count(*map(EventKind, kinds)) for label, kinds in EVENT_ROWS}
        events["unsubscribed"] = stats.unsubscribed
        click.echo(json.dumps({"issue": slug, "total": total, "ledger": ledger,
                               "events": events}, indent=2))
        return
    click.echo(f"{slug}: {total} recipient(s) in the send ledger")
    for state in STATE_ORDER:
        click.echo(f"  {state:<12}{counts[state]:>8}")
    if live:
        click.echo(f"  {'in flight':<12}{live:>8}  (a send is running now)")
    if interrupted:
        click.echo(f"  {'interrupted':<12}{interrupted:>8}  (left in flight by a send that"
                   " stopped; the next send settles them)")
    if senders:
        click.echo(f"  {senders} sender(s) running on this database now")
    click.echo("After sending (provider events and unsubscribes):")
    for label, kinds in EVENT_ROWS:
        click.echo(f"  {label:<12}{stats.count(*map(EventKind, kinds)):>8}")
    # by link (newsletter serve) or by provider event, after this issue reached them
    click.echo(f"  {'unsubscribed':<12}{stats.unsubscribed:>8}")
    if unknown:
        click.echo("Unknown outcome (resend on purpose with `send --all --retry-unknown`):")
        for email in unknown:
            click.echo(f"  {email}")
        if counts["unknown"] > len(unknown):
            click.echo(f"  ... and {counts['unknown'] - len(unknown)} more"
                       f" (all of them: newsletter status {issue} --unknown)")


COMMANDS = [send, status]

"""`newsletter preview`: the live preview server."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli.common import UserError, reports_errors


@click.command()
@click.argument("issue", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--no-open", "no_open", is_flag=True,
              help="Do not open the page in the web browser.")
@reports_errors
def preview(issue: Path, port: int, no_open: bool) -> None:
    """Serve a live preview of ISSUE on http://127.0.0.1:PORT/.

    The page shows the inbox row, the email at desktop and phone width and its plain
    text, its size against Gmail's clipping limit, the offline checks, and a "Send test"
    button (to the reviewers). It updates by itself whenever the issue file, a template,
    newsletter.toml or .env is saved. Only this computer can reach it. Ctrl-C stops it.

    \b
    Example:
      newsletter preview issues/2011-05.yaml
      newsletter preview issues/2011-05.yaml --port 8080 --no-open
    """
    import errno

    from newsletter.preview.server import start_preview

    try:
        server = start_preview(issue, port=port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} is already in use: choose another with --port "
                            "(or --port 0 for any free one)") from None
        raise UserError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    click.echo(f"Preview of {issue} on {server.url}  (Ctrl-C to stop)")
    if not no_open:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        click.echo("\nStopped.")
    finally:
        server.close()


COMMANDS = [preview]

"""`newsletter serve`: the web endpoints (unsubscribe, subscribe/confirm, webhooks)."""

from __future__ import annotations

import click

from newsletter.cli.common import load_settings, reports_errors
from newsletter.tokens import DEFAULT_PORT


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (keep 127.0.0.1 behind a reverse proxy).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on.")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Worker threads (each has its own database connection).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes sharing the port: one process uses about one core, so "
                   "set it to the server's cores to use them all.")
@click.option("--trusted-proxy", default=None, metavar="IP",
              help="Address of the reverse proxy whose X-Forwarded-For/-Proto are believed "
                   "(for the consent record). Without it those headers are ignored.")
@click.option("--poll", default=30.0, show_default=True, type=click.FloatRange(min=0.1),
              metavar="SECONDS",
              help="How often to look for scheduled sends that are due.")
@reports_errors
def serve(host: str, port: int, threads: int, workers: int, trusted_proxy: str | None,
          poll: float) -> None:
    """Serve one-click unsubscribe, subscribe with confirmation, and SendGrid webhooks;
    start scheduled sends when they are due.

    Runs waitress (a production WSGI server). Put it behind an HTTPS reverse proxy and set
    [links] public in newsletter.toml to the address the proxy serves it at.

    \b
    Example:
      newsletter serve
      newsletter serve --port 8780 --threads 16 --trusted-proxy 127.0.0.1
      newsletter serve --workers 4          # four processes on one port
    """
    import logging

    from newsletter.deliver.scheduled import Poller
    from newsletter.web.app import create_app, make_server, run_until_interrupted

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = load_settings()
    app = create_app(settings)  # in every case: a bad setting or database fails here, once
    if workers > 1:
        from newsletter.web import workers as processes

        app.close()  # each worker opens its own connections
        sock = processes.listen(host, port)
        _announce(app, host, sock.getsockname()[1], f"{workers} processes")
        processes.serve_in_processes(settings, sock, workers=workers, threads=threads,
                                     trusted_proxy=trusted_proxy, poll=poll)
        return
    try:
        server = make_server(app, host=host, port=port, threads=threads,
                             trusted_proxy=trusted_proxy)
    except (OSError, ValueError) as exc:  # waitress: ValueError for a host it cannot resolve
        from newsletter.errors import NewsletterError

        why = getattr(exc, "strerror", None) or "unknown host name"
        raise NewsletterError(f"cannot listen on {host}:{port}: {why}") from None
    _announce(app, host, server.effective_port)
    poller = Poller(settings, interval=poll).start()  # scheduled sends, in the background
    run_until_interrupted(server, poller.stop)


def _announce(app, host: str, port: int, how: str = "") -> None:
    settings = app.settings
    click.echo(f"serving {settings.name} on http://{host}:{port}"
               f"{f' ({how})' if how else ''} "
               f"(public address: {settings.public_url or 'not set: [links] public'})", err=True)
    for hook in app.webhooks.values():
        if hook.problem:
            click.echo(f"note: {hook.problem}", err=True)


COMMANDS = [serve]

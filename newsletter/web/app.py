"""The web endpoints of `newsletter serve`: one-click unsubscribe, double opt-in, webhooks.

A small WSGI application (werkzeug for request parsing and responses), served by waitress.
It shares the store with the CLI: every durable write is one `Store.write` (a short
transaction, grouped with concurrent requests' writes), committed before the page answers, so
a `send --all` running at the same moment sees an unsubscribe at once.

Rules kept everywhere: GET never changes state (except /confirm, which is what the link in the
confirmation email is for, and which only acts on an open request); every SQL statement is
parameterised; every value in a page goes through Jinja autoescape; bodies are size-limited
before they are read; tokens and addresses are never logged.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from newsletter import tokens
from newsletter.compose.templates import environment
from newsletter.config import Settings
from newsletter.deliver.campaign import Kind, Recipient, Status, make_campaign
from newsletter.deliver.providers import REGISTRY, Webhook, chosen, get_provider
from newsletter.deliver.providers.base import WebhookRefused
from newsletter.errors import NewsletterError
from newsletter.store import Store, open_store
from newsletter.subscribers import lifecycle

log = logging.getLogger("newsletter.web.app")

FORM_LIMIT = 64 * 1024  # bytes: any form body (subscribe, unsubscribe button, one-click)
WEBHOOK_LIMIT = 1024 * 1024  # bytes: one post of provider events (usually a few hundred KB)
MAX_NAME = 200  # characters kept of a subscriber's name
MAX_FORM_ID = 100
RESEND_AFTER = 60.0  # seconds: at most one confirmation email per address in this time


class _Request(Request):
    # werkzeug refuses larger bodies with 413 before parsing them.
    max_content_length = FORM_LIMIT
    max_form_memory_size = FORM_LIMIT
    max_form_parts = 50


class App:
    """The WSGI application. `App(settings)(environ, start_response)`."""

    def __init__(self, settings: Settings, *, db_path: Path | str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.db_path = db_path or settings.db_path
        self.secrets = settings.secrets  # ConfigError now, at start-up, when unset
        self.list_id = settings.list_id
        # /webhooks/<provider>: every registered provider's webhook, its key checked now.
        self.webhooks: dict[str, Webhook] = {
            name: hook for name, cls in REGISTRY.items()
            if (hook := cls.webhook(settings)) is not None}
        self.clock = clock
        # Created and migrated now, not in the first request.
        self.store: Store = open_store(self.db_path)
        chosen(settings)  # an unknown NEWSLETTER_PROVIDER fails now, not per form
        # address -> when its last confirmation email went out (monotonic). Counted only after
        # a successful send, so a failed one can be retried at once.
        self._mailed: dict[str, float] = {}
        self._mailed_lock = threading.Lock()
        self.security_headers = [
            ("Content-Security-Policy",
             "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
             "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            # Tokens are in our URLs: never pass them on as a Referer, never cache the pages.
            ("Referrer-Policy", "no-referrer"),
            ("Cache-Control", "no-store"),
        ]
        if (settings.public_url or "").startswith("https://"):
            self.security_headers.append(("Strict-Transport-Security", "max-age=31536000"))
        self.jinja = environment(settings, "web")
        self.routes: dict[str, dict[str, Callable[[Request], Response]]] = {
            "/": {"GET": self.subscribe_page},
            "/subscribe": {"GET": self.subscribe_page, "POST": self.subscribe},
            "/confirm": {"GET": self.confirm},
            "/unsubscribe": {"GET": self.unsubscribe_page, "POST": self.unsubscribe},
            "/healthz": {"GET": self.health},
        }

    # -- plumbing ---------------------------------------------------------------------------
    def close(self) -> None:
        self.store.close()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request = _Request(environ)
        try:
            response = self.dispatch(request)
        except RequestEntityTooLarge:
            response = self.page("error.html", 413, title="Too large",
                                 message="That request was larger than this site accepts.")
        except HTTPException as exc:
            response = self.page("error.html", exc.code or 400, title="Bad request",
                                 message="The request could not be understood.")
        except Exception:
            log.exception("error handling %s %s", request.method, request.path)
            response = self.page("error.html", 500, title="Something went wrong",
                                 message="Please try again in a few minutes.")
        self.secure(response)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        methods = self.routes.get(path)
        if methods is None and path.startswith("/webhooks/") and \
                path.removeprefix("/webhooks/") in self.webhooks:
            methods = {"POST": self.webhook}
        if methods is None:
            return self.page("error.html", 404, title="Not found",
                             message="There is no page at this address.")
        method = "GET" if request.method == "HEAD" else request.method
        handler = methods.get(method)
        if handler is None:
            response = self.page("error.html", 405, title="Not allowed",
                                 message="This address does not accept that kind of request.")
            response.headers["Allow"] = ", ".join(sorted({*methods, "HEAD"} if "GET" in methods
                                                         else methods))
            return response
        return handler(request)

    def secure(self, response: Response) -> None:
        response.headers.extend(self.security_headers)

    def page(self, template: str, status: int = 200, **context: Any) -> Response:
        html = self.jinja.get_template(template).render(
            newsletter=self.settings.name, language=self.settings.language,
            contact=self.settings.reply_to or self.settings.from_email,
            website=self.settings.website, **context,
        )
        return Response(html, status=status, mimetype="text/html")

    def bad_link(self) -> Response:
        return self.page(
            "error.html", 400, title="This link does not work",
            message="The link is incomplete or has been changed, so nothing was done. If you "
                    "copied it from an email, please make sure you copied all of it.",
        )

    def read_token(self, request: Request, purpose: str) -> tuple[str, str] | None:
        token = request.args.get("t", "")
        try:
            return token, tokens.read_token(token, purpose=purpose, list_id=self.list_id,
                                            secrets=self.secrets)
        except tokens.BadToken:
            return None

    # -- unsubscribe ------------------------------------------------------------------------
    def unsubscribe_page(self, request: Request) -> Response:
        found = self.read_token(request, tokens.UNSUBSCRIBE)
        if found is None:
            return self.bad_link()
        return self.page("unsubscribe.html", email=found[1])

    def unsubscribe(self, request: Request) -> Response:
        """RFC 8058 one-click (body `List-Unsubscribe=One-Click`) or the page's button: both
        unsubscribe at once; the token is the only credential needed."""
        found = self.read_token(request, tokens.UNSUBSCRIBE)
        if found is None:
            return self.bad_link()
        one_click = request.form.get("List-Unsubscribe") == "One-Click"  # 413 when too large
        source = "one-click" if one_click else "web page"
        try:
            self.store.write(lambda tx: lifecycle.unsubscribe(tx, found[1], "unsubscribe link",
                                                              source))
        except ValueError:  # a signed address that cannot be normalised: nothing to do
            pass
        return self.page("unsubscribed.html", email=found[1])

    # -- double opt-in ---------------------------------------------------------------------
    def subscribe_page(self, request: Request) -> Response:
        return self.page("subscribe.html", error=None, email="", name="")

    def subscribe(self, request: Request) -> Response:
        email = request.form.get("email", "").strip()
        name = _one_line(request.form.get("name", ""))
        form_id = _one_line(request.form.get("form", ""))[:MAX_FORM_ID] or "subscribe"
        error = None
        if len(name) > MAX_NAME:
            error = f"Please give a name of at most {MAX_NAME} characters."
        else:
            try:
                from email_validator import EmailNotValidError, validate_email

                validate_email(email, check_deliverability=False)
                address = lifecycle.normalise_email(email)
            except (EmailNotValidError, ValueError):
                error = "Please enter a valid email address, such as name@example.org."
        if error:
            return self.page("subscribe.html", 400, error=error, email=email[:320],
                             name=name[:MAX_NAME])
        outcome = self.store.write(lambda tx: lifecycle.subscribe_request(
            tx, address, name or None, request.remote_addr, f"{form_id} ({request.path})"))
        if outcome.send_confirmation and self._may_mail(address):
            try:
                self.send_confirmation(address, name or None)
            except NewsletterError as exc:
                log.error("confirmation email not sent: %s", exc)
                return self.page(
                    "error.html", 503, title="Please try again later",
                    message="We could not send the confirmation email just now.",
                )
            with self._mailed_lock:
                self._mailed[address] = time.monotonic()
        # The same answer whatever the address's state, so the form reveals nobody's status.
        return self.page("check_inbox.html", email=address)

    def _may_mail(self, address: str) -> bool:
        """False when this address was sent a confirmation a moment ago: the form must not
        become a way to flood someone's inbox."""
        now = time.monotonic()
        with self._mailed_lock:
            if len(self._mailed) > 10_000:  # forget the old entries; memory stays bounded
                self._mailed = {a: t for a, t in self._mailed.items()
                                if now - t < RESEND_AFTER}
            last = self._mailed.get(address)
        return last is None or now - last >= RESEND_AFTER

    def send_confirmation(self, email: str, name: str | None) -> None:
        url = tokens.confirm_url(self.settings, email)
        context = {"newsletter": self.settings.name, "url": url, "name": name,
                   "postal_address": self.settings.postal_address,
                   "language": self.settings.language}
        campaign = make_campaign(
            self.settings, kind=Kind.TRANSACTIONAL, slug="confirm",
            subject=f"Please confirm your subscription to {self.settings.name}",
            html=self.jinja.get_template("confirm_email.html").render(**context),
            text=self.jinja.get_template("confirm_email.txt").render(**context),
        )
        provider = get_provider(self.settings)
        try:
            (result,) = provider.send_batch(campaign, [Recipient(email=email, name=name)])
        finally:
            provider.close()
        if result.status not in (Status.SENT, Status.QUEUED, Status.UNKNOWN):
            raise NewsletterError(f"provider answered {result.status}: {result.error or ''}")

    def confirm(self, request: Request) -> Response:
        found = self.read_token(request, tokens.CONFIRM)
        if found is None:
            return self.bad_link()
        try:
            outcome = self.store.write(lambda tx: lifecycle.confirm(tx, found[1]))
            with self._mailed_lock:  # that request is answered: a new one may be mailed
                self._mailed.pop(lifecycle.normalise_email(found[1]), None)
        except ValueError:
            return self.bad_link()
        return self.page("confirmed.html", email=found[1], outcome=outcome)

    # -- provider event webhooks -----------------------------------------------------------
    def webhook(self, request: Request) -> Response:
        """POST /webhooks/<provider>: the provider's own parser checks the request and reads
        its events; the subscriber rules apply them in one transaction."""
        def plain(status: int, message: str) -> Response:
            return Response(message + "\n", status=status, mimetype="text/plain")

        name = request.path.rstrip("/").removeprefix("/webhooks/")
        hook = self.webhooks[name]
        length = request.content_length
        if length is not None and length > WEBHOOK_LIMIT:
            return plain(413, "body too large")
        if hook.problem:
            log.error("webhook refused: %s", hook.problem)
        # Straight from the server's buffer: werkzeug's stream would apply the form limit.
        body = request.environ["wsgi.input"].read(WEBHOOK_LIMIT + 1)
        if len(body) > WEBHOOK_LIMIT:
            return plain(413, "body too large")
        try:
            events, invalid = hook.parse(request.headers, body, self.clock())
        except WebhookRefused as exc:
            return plain(exc.status, exc.message)
        applied = self.store.write(
            lambda tx: lifecycle.apply_events(tx, events, invalid=invalid))
        return Response(json.dumps(applied.as_dict()), mimetype="application/json")

    def health(self, request: Request) -> Response:
        self.store.ping()
        return Response("ok\n", mimetype="text/plain")


def _one_line(value: str) -> str:
    """Text as one line of printable characters (no CR/LF, NUL or other controls)."""
    return "".join(ch for ch in " ".join(value.split()) if ch.isprintable())



def create_app(settings: Settings, **kwargs: Any) -> App:
    return App(settings, **kwargs)


def make_server(app: App, *, host: str = "127.0.0.1", port: int = tokens.DEFAULT_PORT,
                threads: int = 8, trusted_proxy: str | None = None,
                sockets: list[socket.socket] | None = None):
    """A waitress server (not yet running: call `.run()`; `.close()` from another thread),
    on `host`:`port`, or on `sockets` already listening (`serve --workers`).

    With `trusted_proxy` (the reverse proxy's address), waitress takes the client address
    from X-Forwarded-For and the scheme from X-Forwarded-Proto, and only from that peer;
    without it those headers are ignored and removed.
    """
    from waitress.server import create_server

    where: dict[str, Any] = {"sockets": sockets} if sockets else {"host": host, "port": port}
    options: dict[str, Any] = {
        **where, "threads": threads,
        "max_request_body_size": WEBHOOK_LIMIT + 1024,
        "ident": "newsletter", "clear_untrusted_proxy_headers": True,
        "channel_timeout": 30, "connection_limit": 200,
    }
    if trusted_proxy:
        options["trusted_proxy"] = trusted_proxy
        options["trusted_proxy_headers"] = {"x-forwarded-for", "x-forwarded-proto"}
        options["trusted_proxy_count"] = 1
    return create_server(app, **options)


def run_until_interrupted(server, *then: Callable[[], None]) -> None:
    """Run `server` until Ctrl-C (or a SIGTERM turned into one), then close it and call each
    of `then` (e.g. stop the scheduled-send poller, close the app)."""
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        for step in then:
            step()

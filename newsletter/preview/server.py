"""`newsletter preview`: a live preview of one issue on http://127.0.0.1:PORT/.

One background thread renders the issue whenever the issue file, a template, `newsletter.toml`
or `.env` changes (watched with watchfiles) and publishes a snapshot; every open page holds a
Server-Sent Events connection (`/events`) and swaps in the new email, text, inbox row and check
results without reloading. Requests never render: they only read the latest snapshot.

A file saved half-edited becomes an error shown in the page (with file and line); the last
version that rendered stays visible underneath and the page recovers on the next good save.

"Send test" is a POST to `/send-test` carrying a random per-run token (embedded in the page) and
the id of the render the reviewer is looking at, so what reviewers receive is exactly what the
page shows. The server binds 127.0.0.1 only and refuses requests for any other Host name (a
DNS-rebinding page cannot read the token).
"""

from __future__ import annotations

import hmac
import json
import mimetypes
import re
import secrets
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import TemplateError, TemplateSyntaxError
from watchfiles import DefaultFilter, watch

from newsletter.checks import run_checks
from newsletter.compose.building import GMAIL_CLIP_BYTES, WARN_BYTES
from newsletter.compose.issue import load_issue
from newsletter.compose.render import render_issue
from newsletter.config import Settings, find_config, load_settings
from newsletter.deliver.preflight import preflight
from newsletter.deliver.providers import REGISTRY, chosen
from newsletter.deliver.sender import send_test
from newsletter.errors import ConfigError, IssueError, NewsletterError
from newsletter.tokens import unsubscribe_url

HOST = "127.0.0.1"
DEFAULT_PORT = 8000
HEARTBEAT_SECONDS = 15.0  # an SSE comment line keeps proxies and the browser from timing out
SAMPLE_READER = "reader@example.org"  # whose unsubscribe link the preview shows

_ASSETS = {
    "/static/preview.css": ("preview.css", "text/css; charset=utf-8"),
    "/static/preview.js": ("preview.js", "text/javascript; charset=utf-8"),
}


def _asset(name: str) -> str:
    return resources.files("newsletter").joinpath("preview", "assets", name).read_text("utf-8")


# -- what the page shows --------------------------------------------------------------------


def _display_path(path: str | Path | None) -> str | None:
    """A path relative to the working folder when it is inside it (shorter in the page)."""
    if path is None:
        return None
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(p)


def _problem(exc: NewsletterError) -> dict[str, Any]:
    file = _display_path(exc.file)
    where = (file or "") + (f":{exc.line}" if file and exc.line else "")
    return {"file": file, "line": exc.line, "field": exc.field, "message": exc.message,
            "where": where or None,
            "text": (f"{where}: " if where else "") + (f"{exc.field}: " if exc.field else "")
            + exc.message}


def describe_error(exc: BaseException) -> dict[str, Any]:
    """The error of a failed render as the page shows it: a title and located problems."""
    if isinstance(exc, IssueError):
        problems = exc.problems
        title = "The issue file has a problem" if len(problems) == 1 else (
            f"The issue file has {len(problems)} problems")
        return {"title": title, "problems": [_problem(p) for p in problems]}
    if isinstance(exc, ConfigError):
        return {"title": "The settings have a problem", "problems": [_problem(exc)]}
    if isinstance(exc, NewsletterError):
        return {"title": "The issue could not be rendered", "problems": [_problem(exc)]}
    if isinstance(exc, TemplateError):  # one the renderer let through: still say where
        file = getattr(exc, "filename", None) or getattr(exc, "name", None)
        line = exc.lineno if isinstance(exc, TemplateSyntaxError) else None
        err = NewsletterError(exc.message or type(exc).__name__, file=file, line=line)
        return {"title": "A template has a problem", "problems": [_problem(err)]}
    return {"title": "Unexpected error while rendering (details in the terminal)",
            "problems": [{"file": None, "line": None, "field": None, "where": None,
                          "message": f"{type(exc).__name__}: {exc}",
                          "text": f"{type(exc).__name__}: {exc}"}]}


def send_status(settings: Settings | None) -> dict[str, Any]:
    """Whether "Send test" can work with these settings, and where it would send."""
    off = {"enabled": False, "provider": None, "detail": "", "recipients": []}
    if settings is None:
        return {**off, "reason": "Fix the settings error first."}
    recipients = list(settings.reviewers)
    try:
        provider = chosen(settings)
    except ConfigError as exc:
        return {**off, "recipients": recipients,
                "reason": f"No mail provider is configured: {exc}"}
    cls = REGISTRY[provider]
    problem = cls.usable(settings)
    if problem:
        return {**off, "provider": provider, "recipients": recipients,
                "reason": f"The {provider} provider is not ready: {problem}."}
    detail = cls.describe(settings)  # never a password
    if not recipients:
        return {**off, "provider": provider, "detail": detail,
                "reason": "No reviewers: add them to [sender] reviewers in newsletter.toml."}
    return {"enabled": True, "reason": "", "provider": provider, "detail": detail,
            "recipients": recipients}


def full_send_status(rendered: Any, settings: Settings, findings: list | None
                     ) -> dict[str, Any]:
    """What `newsletter send --all` would say now: the preflight's problems and the count.
    Never raises (a database that cannot be opened is one more problem)."""
    try:
        found = preflight(rendered, settings, findings=findings if findings is not None else [])
    except NewsletterError as exc:
        return {"ready": False, "recipients": 0, "active": 0,
                "problems": [{"code": "error", "message": str(exc), "overridable": False}]}
    return {"ready": found.ok(), "recipients": found.recipients, "active": found.active,
            "where": found.where,
            "problems": [{"code": p.code, "message": p.message, "overridable": p.overridable}
                         for p in found.problems]}


def _sample_unsubscribe_url(settings: Settings) -> str:
    try:
        return unsubscribe_url(settings, SAMPLE_READER)
    except (NewsletterError, AttributeError, TypeError, ValueError):
        base = settings.public_url or "https://example.org"
        return f"{base}/unsubscribe?t=preview"


def _frame_html(html: str) -> str:
    """The email as the iframe shows it: links open in a new tab instead of inside the frame."""
    base = '<base target="_blank">'
    new, n = re.subn(r"(<head\b[^>]*>)", lambda m: m.group(1) + base, html, count=1,
                     flags=re.IGNORECASE)
    return new if n else base + html


_DARK_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.I)
# Clients that ignore an email's own dark styles (Gmail's apps, Outlook.com) invert its
# colours themselves; this is a fair likeness: light backgrounds turn dark, pictures stay.
_FORCED_DARK = ("<style>html{filter:invert(1) hue-rotate(180deg);background:#fff}"
                "img{filter:invert(1) hue-rotate(180deg)}</style>")


def dark_html(html: str) -> tuple[str, str]:
    """The email as a mail client in dark mode shows it, and a sentence saying which kind.

    With `@media (prefers-color-scheme: dark)` rules (as the default template has), those
    rules apply, as in Apple Mail, iOS Mail and Outlook for Mac. Without them, the colours
    are inverted, as clients that force a dark mode do."""
    scheme = '<meta name="color-scheme" content="dark"><style>:root{color-scheme:dark}</style>'
    if _DARK_QUERY.search(html):
        styled = _DARK_QUERY.sub("(min-width: 0px)", html)
        hint = ("Dark: the email's own dark-mode styles applied, as Apple Mail, iOS Mail and "
                "Outlook for Mac show it to readers who use dark mode.")
        extra = scheme
    else:
        styled = html
        hint = ("Dark: this email has no dark-mode styles, so clients that force dark mode "
                "(Gmail's apps, Outlook.com) invert its colours, roughly like this.")
        extra = scheme + _FORCED_DARK
    new, n = re.subn(r"(<head\b[^>]*>)", lambda m: m.group(1) + extra, styled, count=1,
                     flags=re.IGNORECASE)
    return (new if n else extra + styled), hint


def _offline_findings(rendered: Any, settings: Settings) -> list | Exception:
    try:
        return run_checks(rendered, settings, offline=True)
    except Exception as exc:  # a crashing check must not stop the preview
        traceback.print_exc(file=sys.stderr)
        return exc


def _checks_payload(findings: list | Exception) -> dict[str, Any]:
    if isinstance(findings, Exception):
        return {"state": "failed", "findings": [],
                "message": f"The checks failed: {type(findings).__name__}: {findings}"}
    order = {"error": 0, "warning": 1, "note": 2}
    items = sorted(
        ({"level": f.level, "category": f.category, "message": f.message, "where": f.where}
         for f in findings),
        key=lambda f: (order.get(f["level"], 3), f["category"]))
    return {"state": "done", "findings": items, "message": None}


# -- the snapshot the watcher publishes ------------------------------------------------------


@dataclass
class _State:
    seq: int = 0  # bumps on every publish (the SSE event id)
    render_id: int = 0  # bumps on every successful render
    settings: Settings | None = None  # of the last attempt (None when they failed to load)
    good_settings: Settings | None = None  # of the last good render
    rendered: Any = None  # the last good Rendered
    email: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    checks: dict[str, Any] = field(default_factory=lambda: {"state": "pending", "findings": []})
    full_send: dict[str, Any] | None = None  # preflight of a send to all, after the checks
    updated: float = 0.0
    pictures: dict[str, Path] = field(default_factory=dict)  # name -> processed file


def _default_render(issue_path: Path, settings: Settings) -> Any:
    issue = load_issue(issue_path)
    return render_issue(issue, settings), issue


class Preview:
    """Renders one issue on every change and hands snapshots to the web server.

    `config_path` defaults to the usual lookup (NEWSLETTER_CONFIG or the nearest
    newsletter.toml). `step_ms`/`debounce_ms` are watchfiles' grouping delays. File events
    (inotify) are used when the system grants them, polling otherwise (or with
    `force_polling=True`; it notices changes from about half a second after start).
    """

    def __init__(self, issue_path: str | Path, config_path: str | Path | None = None, *,
                 step_ms: int = 50, debounce_ms: int = 400,
                 force_polling: bool | None = None) -> None:
        self.issue_path = Path(issue_path).resolve()
        if not self.issue_path.is_file():
            raise IssueError([NewsletterError("file not found", file=issue_path)])
        self.config_path = Path(config_path or find_config()).resolve()
        self.step_ms, self.debounce_ms, self.force_polling = step_ms, debounce_ms, force_polling
        self.run_id = secrets.token_hex(8)  # a restarted server makes open pages reload
        self._state = _State()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._dirty = threading.Event()
        self._threads: list[threading.Thread] = []
        self.send_lock = threading.Lock()
        self._checks_async = False  # until start(): rebuild() runs the checks itself
        self._check_job: tuple[int, Any, Settings] | None = None  # only the latest matters
        self._check_wanted = threading.Event()

    # -- rendering ------------------------------------------------------------------------
    def rebuild(self) -> None:
        """Render now and publish; then run the offline checks and publish their findings."""
        settings: Settings | None = None
        try:
            settings = load_settings(self.config_path)
            rendered, issue = _default_render(self.issue_path, settings)
        except Exception as exc:  # any failure becomes a message in the page
            if not isinstance(exc, NewsletterError):
                traceback.print_exc(file=sys.stderr)
            with self._cond:
                s = self._state
                s.settings, s.error = settings, describe_error(exc)
                self._publish()
            return

        unsubscribe = _sample_unsubscribe_url(settings)
        html, text = rendered.personalise(unsubscribe)
        # Local pictures are not published yet: the page shows them from the build cache.
        pictures = {a.name: a.path for a in getattr(rendered, "assets", ())}
        for name in pictures:
            html = html.replace(f"{settings.assets_url}{name}", f"/images/{name}")
        dark, dark_hint = dark_html(_frame_html(html))
        date = getattr(issue, "date", None)
        email = {
            "slug": rendered.slug, "subject": rendered.subject,
            "preheader": rendered.preheader or "",
            "from_name": settings.from_name, "from_email": settings.from_email,
            "date": date.isoformat() if date else None,
            "html": _frame_html(html), "text": text,
            "html_dark": dark, "dark_hint": dark_hint,
            # measured as `build` and `check` measure it (a personalised copy differs by the
            # length of one unsubscribe URL)
            "html_bytes": len(rendered.html.encode("utf-8")),
            "text_bytes": len(text.encode("utf-8")),
            "limit": GMAIL_CLIP_BYTES, "warn": WARN_BYTES,
        }
        with self._cond:
            s = self._state
            s.render_id += 1
            render_id = s.render_id
            s.settings = s.good_settings = settings
            s.rendered, s.email, s.error = rendered, email, None
            s.pictures = pictures
            s.checks = {"state": "pending", "findings": [], "message": None}
            s.full_send = None
            self._publish()
        if self._checks_async:  # a save during a slow check must not wait for it
            with self._cond:
                self._check_job = (render_id, rendered, settings)
            self._check_wanted.set()
        else:
            self._run_checks(render_id, rendered, settings)

    def _run_checks(self, render_id: int, rendered: Any, settings: Settings) -> None:
        findings = _offline_findings(rendered, settings)  # about a second with SpamAssassin
        full = full_send_status(rendered, settings,
                                None if isinstance(findings, Exception) else findings)
        with self._cond:
            if self._state.render_id == render_id:  # a newer render has its own checks
                self._state.checks = _checks_payload(findings)
                self._state.full_send = full
                self._publish()

    def _check_loop(self) -> None:
        while not self._stop.is_set():
            if not self._check_wanted.wait(timeout=0.25):
                continue
            self._check_wanted.clear()
            with self._cond:
                job, self._check_job = self._check_job, None
            if job is not None and not self._stop.is_set():
                self._run_checks(*job)

    def _publish(self) -> None:  # caller holds self._cond
        self._state.seq += 1
        self._state.updated = time.time()
        self._cond.notify_all()

    def payload(self) -> dict[str, Any]:
        """The JSON the page draws from (also the data of every SSE event)."""
        with self._cond:
            s = self._state
            send = send_status(s.settings)
            if s.error is not None and send["enabled"]:
                send = {**send, "enabled": False, "reason": "Fix the problem shown above first."}
            send["all"] = s.full_send if s.error is None else None
            return {
                "run": self.run_id, "seq": s.seq, "render_id": s.render_id,
                "updated": time.strftime("%H:%M:%S", time.localtime(s.updated)),
                "issue_file": _display_path(self.issue_path),
                "email": s.email, "error": s.error, "checks": s.checks,
                "send": send,
            }

    def wait(self, after_seq: int, timeout: float) -> int:
        """Block until a publish newer than `after_seq` (or timeout/stop); the current seq."""
        with self._cond:
            self._cond.wait_for(lambda: self._state.seq > after_seq or self._stop.is_set(),
                                timeout=timeout)
            return self._state.seq

    def picture(self, name: str) -> Path | None:
        """The processed file of a local picture of the current render, by published name."""
        with self._cond:
            return self._state.pictures.get(name)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- sending --------------------------------------------------------------------------
    def send_test(self, render_id: Any) -> tuple[int, dict[str, Any]]:
        """Test-send the render the page shows. (HTTP status, JSON body)."""
        with self._cond:
            s = self._state
            rendered, settings, current, error = (s.rendered, s.good_settings, s.render_id,
                                                  s.error)
        if rendered is None or settings is None:
            return 409, {"ok": False, "message": "Nothing has rendered yet: fix the error first."}
        if error is not None:
            return 409, {"ok": False, "message": "The issue has an error: fix it before "
                                                 "sending a test."}
        if render_id != current:
            return 409, {"ok": False, "message": "The issue changed since this page was "
                                                 "drawn: look at the new version, then send."}
        status = send_status(settings)
        if not status["enabled"]:
            return 409, {"ok": False, "message": status["reason"]}
        if not self.send_lock.acquire(blocking=False):
            return 409, {"ok": False, "message": "A test send is already running."}
        try:
            results = send_test(rendered, settings)
        except NewsletterError as exc:
            return 502, {"ok": False, "message": str(exc)}
        except Exception as exc:  # report it in the page, keep serving
            traceback.print_exc(file=sys.stderr)
            return 500, {"ok": False, "message": f"{type(exc).__name__}: {exc}"}
        finally:
            self.send_lock.release()
        rows = [{"email": r.email, "status": str(r.status), "error": r.error} for r in results]
        ok = bool(rows) and all(r["status"] in ("sent", "queued") for r in rows)
        where = status["detail"]
        if ok:
            message = (f"Test sent to {', '.join(r['email'] for r in rows)} {where} "
                       f"at {time.strftime('%H:%M:%S')}.")
        else:
            bad = [f"{r['email']} ({r['status']}{': ' + r['error'] if r['error'] else ''})"
                   for r in rows if r["status"] not in ("sent", "queued")]
            message = "Not delivered to: " + "; ".join(bad) if bad else "No recipients."
        return (200 if ok else 502), {"ok": ok, "message": message, "results": rows}

    # -- watching -------------------------------------------------------------------------
    def start(self) -> None:
        """First render (synchronously, so the first page has content), then watch.

        Three kinds of background threads: watchers (they only flag a change), one render
        thread, and one checks thread (the email updates at once, its findings a moment later).
        """
        self._checks_async = True
        self._spawn(self._check_loop, name="checks")
        self.rebuild()
        root = self.config_path.parent
        files = {str(self.issue_path), str(self.config_path), str(root / ".env")}
        folders = sorted({str(self.issue_path.parent), str(root)})
        ready = [threading.Event()]
        self._spawn(self._watch, folders, False, lambda _c, p: p in files, ready[-1],
                    name="files")
        templates = root / "templates"  # Settings.templates_dir
        if templates.is_dir():
            ready.append(threading.Event())
            self._spawn(self._watch, [str(templates.resolve())], True, DefaultFilter(),
                        ready[-1], name="templates")
        self._spawn(self._build_loop, name="render")
        for event in ready:  # a save right after start() returns is not missed
            event.wait(timeout=3)

    def _spawn(self, target: Any, *args: Any, name: str) -> None:
        t = threading.Thread(target=target, args=args, name=f"preview-{name}", daemon=True)
        t.start()
        self._threads.append(t)

    def _watch(self, paths: list[str], recursive: bool, watch_filter: Any,
               ready: threading.Event) -> None:
        # The folders, not the files: editors often save by writing a new file and renaming it
        # over the old one, which a watch on the file itself would lose.
        polling = self.force_polling
        while not self._stop.is_set():
            try:
                # yield_on_timeout: the first (empty) yield says the watch is in place
                for changes in watch(*paths, watch_filter=watch_filter, stop_event=self._stop,
                                     step=self.step_ms, debounce=self.debounce_ms,
                                     recursive=recursive, force_polling=polling,
                                     raise_interrupt=False, rust_timeout=200,
                                     yield_on_timeout=True):
                    if changes:
                        self._dirty.set()
                    ready.set()
                return
            except Exception as exc:  # inotify refused (watch limit) or a folder vanished
                if self._stop.is_set():
                    return
                if polling:
                    print(f"preview: stopped watching {', '.join(paths)}: {exc}",
                          file=sys.stderr)
                    return
                print(f"preview: file events unavailable ({exc}); polling instead",
                      file=sys.stderr)
                polling = True

    def _build_loop(self) -> None:
        while not self._stop.is_set():
            if self._dirty.wait(timeout=0.25):
                self._dirty.clear()
                if self._stop.is_set():
                    break
                try:
                    self.rebuild()
                except Exception:  # never let one bad render end live reload
                    traceback.print_exc(file=sys.stderr)

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=5)


# -- the web server ---------------------------------------------------------------------------


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True  # an open SSE stream never blocks shutdown
    allow_reuse_address = True

    def __init__(self, preview: Preview, port: int = DEFAULT_PORT) -> None:
        self.preview = preview
        self.token = secrets.token_urlsafe(32)
        super().__init__((HOST, port), _Handler)
        self.port = self.server_address[1]
        self.allowed_hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def start_background(self) -> PreviewServer:
        """Serve from a thread (tests, embedding); `close()` stops it."""
        self._thread = threading.Thread(target=self.serve_forever, name="preview-http",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.preview.close()  # ends the SSE loops first
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
        self.server_close()

    def __enter__(self) -> PreviewServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_preview(issue_path: str | Path, *, port: int = DEFAULT_PORT,
                  config_path: str | Path | None = None, **watch: Any) -> PreviewServer:
    """Bind, render, start watching. The caller runs `serve_forever()` or `start_background()`.

    Raises OSError when the port is taken, IssueError when the issue file does not exist.
    """
    preview = Preview(issue_path, config_path, **watch)
    server = PreviewServer(preview, port)
    try:
        preview.start()
    except BaseException:
        server.server_close()
        preview.close()
        raise
    return server


_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# The email iframe (srcdoc) inherits this policy: its inline styles and remote images must load,
# its scripts must not (the iframe is sandboxed too).
_PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
             "img-src 'self' http: https: data:; connect-src 'self'; frame-src 'self'; "
             "frame-ancestors 'none'; form-action 'none'; object-src 'none'")


class _Handler(BaseHTTPRequestHandler):
    server: PreviewServer
    server_version = "newsletter-preview"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal is the UI
        pass

    # -- plumbing --------------------------------------------------------------------------
    def _host_ok(self) -> bool:
        if self.headers.get("Host", "") in self.server.allowed_hosts:
            return True
        self._send(HTTPStatus.MISDIRECTED_REQUEST, b"unknown host name\n", "text/plain")
        return False

    def _send(self, status: int, body: bytes, ctype: str,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in {**_SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    # -- routes -------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if not self._host_ok():
            return
        path = urlsplit(self.path).path
        preview = self.server.preview
        if path == "/":
            self._send(200, self._page().encode(), "text/html; charset=utf-8",
                       {"Content-Security-Policy": _PAGE_CSP, "X-Frame-Options": "DENY"})
        elif path in _ASSETS:
            name, ctype = _ASSETS[path]
            self._send(200, _asset(name).encode(), ctype)
        elif path == "/events":
            self._events()
        elif path == "/state.json":
            self._json(200, preview.payload())
        elif path in ("/email.html", "/email.txt"):
            email = preview.payload()["email"]
            if email is None:
                self._send(404, b"nothing rendered yet\n", "text/plain; charset=utf-8")
            elif path == "/email.html":
                self._send(200, email["html"].encode(), "text/html; charset=utf-8",
                           {"Content-Security-Policy": "script-src 'none'"})
            else:
                self._send(200, email["text"].encode(), "text/plain; charset=utf-8")
        elif path.startswith("/images/"):
            file = preview.picture(path.removeprefix("/images/"))
            try:
                body = file.read_bytes() if file is not None else None
            except OSError:
                body = None
            if body is None:
                self._send(404, b"no such picture in this issue\n", "text/plain; charset=utf-8")
            else:
                ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                self._send(200, body, ctype)
        elif path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok():
            return
        if urlsplit(self.path).path != "/send-test":
            self._send(404, b"not found\n", "text/plain; charset=utf-8")
            return
        given = self.headers.get("X-Preview-Token", "")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:  # garbage or negative: answer instead of failing (or reading forever)
            self.close_connection = True
            self._json(400, {"ok": False, "message": "bad Content-Length"})
            return
        length = min(length, 64 * 1024)
        raw = self.rfile.read(length) if length else b""
        if not hmac.compare_digest(given.encode(), self.server.token.encode()):
            self._json(403, {"ok": False, "message": "Missing or wrong preview token: reload "
                                                     "the page."})
            return
        try:
            render_id = json.loads(raw or b"{}").get("render_id")
        except (ValueError, AttributeError):
            self._json(400, {"ok": False, "message": "expected a JSON body {\"render_id\": N}"})
            return
        status, body = self.server.preview.send_test(render_id)
        self._json(status, body)

    def do_PUT(self) -> None:  # noqa: N802
        self._send(405, b"method not allowed\n", "text/plain", {"Allow": "GET, HEAD, POST"})

    do_DELETE = do_PATCH = do_PUT

    def _page(self) -> str:
        state = json.dumps(self.server.preview.payload()).replace("<", "\\u003c")
        return (_asset("page.html")
                .replace("{{TOKEN}}", self.server.token)
                .replace("{{STATE}}", state))

    def _events(self) -> None:
        """Server-Sent Events: the current state at once, then every new one, until stop."""
        preview = self.server.preview
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        if self.command == "HEAD":
            return
        sent = -1
        try:
            self.wfile.write(b"retry: 1000\n\n")
            while not preview.stopping:
                seq = preview.wait(sent, timeout=HEARTBEAT_SECONDS)
                if preview.stopping:
                    break
                if seq == sent:
                    self.wfile.write(b": ping\n\n")
                else:
                    data = preview.payload()
                    sent = data["seq"]
                    self.wfile.write(f"id: {sent}\nevent: state\ndata: "
                                     f"{json.dumps(data)}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass  # the page was closed
        self.close_connection = True

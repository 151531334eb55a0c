"""`newsletter serve --workers N`: N processes answering on one listening socket.

One Python process runs its request threads one at a time (the GIL), so a single `serve` uses
about one core however many threads it has. Worker processes share the socket the parent
bound (the kernel hands each connection to one of them); each has its own app, database
connections and threads. Scheduled sends are started by one more process, not by every
worker. The parent only watches: a worker that dies is replaced, and SIGTERM or Ctrl-C stops
them all, each after the requests it is answering.

The parent starts no thread and has no database connection open when it forks (the app it
made to check the settings is closed first): children of a threaded process can inherit a lock
held by a thread that no longer exists, and a connection must not be shared by processes.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any, NoReturn

from newsletter.config import Settings
from newsletter.errors import NewsletterError

log = logging.getLogger(__name__)

STARTUP = 10.0  # seconds: a worker failing sooner than this is broken, not unlucky
STOP_TIMEOUT = 15.0  # seconds given to the children to finish their requests


def listen(host: str, port: int) -> socket.socket:
    """The listening socket the workers share (IPv4 or IPv6, as `host` resolves)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror:
        raise NewsletterError(f"cannot listen on {host}:{port}: unknown host name") from None
    try:
        sock = socket.create_server((host, port), family=family, backlog=1024)
    except OSError as exc:
        raise NewsletterError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def serve_in_processes(settings: Settings, sock: socket.socket, *, workers: int, threads: int,
                       trusted_proxy: str | None, poll: float) -> None:
    """Run `workers` server processes and the scheduled-send poller on `sock` until SIGTERM
    or Ctrl-C. NewsletterError when a worker fails at start (the reason is in the log)."""
    def worker() -> None:
        from newsletter.web.app import create_app, make_server, run_until_interrupted

        app = create_app(settings)
        server = make_server(app, sockets=[sock], threads=threads, trusted_proxy=trusted_proxy)
        run_until_interrupted(server, app.close)

    def poller() -> None:
        from newsletter.deliver.scheduled import Poller

        running = Poller(settings, interval=poll).start()
        try:
            while True:
                signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            running.stop()

    roles: dict[int, tuple[str, Callable[[], None], float]] = {}

    def start(name: str, target: Callable[[], None]) -> None:
        roles[_fork(target)] = (name, target, time.monotonic())

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for n in range(workers):
            start(f"worker {n + 1}", worker)
        start("scheduled sends", poller)
        while True:
            pid, status = os.wait()
            name, target, began = roles.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if time.monotonic() - began < STARTUP and code > 0:  # failed, not killed
                raise NewsletterError(f"serve's {name} stopped at start (exit {code}):"
                                      " see the messages above")
            log.warning("%s (pid %d) stopped (exit %d); starting another", name, pid, code)
            start(name, target)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(list(roles))


def _fork(target: Callable[[], None]) -> int:
    pid = os.fork()
    if pid:
        return pid
    _child(target)


def _child(target: Callable[[], None]) -> NoReturn:
    code = 0
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        target()
    except KeyboardInterrupt:
        pass
    except BaseException:  # noqa: BLE001 - a worker reports, then exits non-zero
        log.exception("serve worker %d failed", os.getpid())
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)  # never return into the parent's code (no atexit, no click)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop(pids: list[int]) -> None:
    """SIGTERM to every child, then wait; SIGKILL for any still there after STOP_TIMEOUT."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    waiting = set(pids)
    while waiting:
        for pid in list(waiting):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                waiting.discard(pid)
        if waiting and time.monotonic() > deadline:
            for pid in waiting:
                _signal(pid, signal.SIGKILL)
            deadline = float("inf")
        if waiting:
            time.sleep(0.05)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass

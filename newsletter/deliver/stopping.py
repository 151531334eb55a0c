"""`newsletter stop` reaches a running send through the database, so it works across
processes and machines: a stop request is a row; every send to all watches for one.

The watcher is a thread with its own connection that reads the request (a primary-key
look-up) every `interval` seconds and sets the send's stop event; the send loop checks that
event between batches, so the batch on the wire finishes and is recorded and the ledger stays
consistent. Starting a send clears an earlier request: `send --all` after a stop resumes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from newsletter.deliver.schedule import who
from newsletter.store import open_store

POLL = 0.5  # seconds between looks at the stop request


def request_stop(settings, slug: str, by: str | None = None) -> None:
    with open_store(settings) as store:
        store.schedules.request_stop(slug, by or who())


@dataclass
class StopWatch:
    event: threading.Event = field(default_factory=threading.Event)
    requested: str | None = None  # "user@host at time" once a stop request was seen


@contextmanager
def watching(settings, slug: str, event: threading.Event | None = None,
             interval: float = POLL, *, also: threading.Event | None = None
             ) -> Iterator[StopWatch]:
    """Clear any earlier stop request of `slug`, then set `event` (or a new one) when a new
    request arrives, or when `also` is set (e.g. the server shuts down), until the block
    ends."""
    watch = StopWatch(event or threading.Event())
    with open_store(settings) as store:
        store.schedules.clear_stop(slug)
    done = threading.Event()

    def poll() -> None:
        with open_store(settings) as store:  # this thread's own connection
            while not done.wait(interval):
                if also is not None and also.is_set():
                    watch.event.set()
                    return
                found = store.schedules.stop_requested(slug)
                if found:
                    watch.requested = found
                    watch.event.set()
                    return

    thread = threading.Thread(target=poll, name=f"stop-watch-{slug}", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        done.set()
        thread.join(interval + 5)

"""Scheduled sends (`schedules`) and stop requests (`stop_requests`): the rows behind
`send --at`, `schedule`, `run-scheduled` and `newsletter stop`. The only SQL on those tables.

Both live in the database, not in a process, so they reach every `serve`, timer and send on
every machine that shares it. A schedule is started by whoever first moves it from `scheduled`
to `running` (one conditional UPDATE: the database decides, so two processes polling at the
same moment never both start it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from newsletter.errors import StoreError
from newsletter.store.common import Connection, iso, now

_COLUMNS = ("id, issue, issue_path, send_at, state, content_hash, scheduled_by, created_at, detail,"
            " started_at, finished_at, runner, offline, forced")


@dataclass(frozen=True)
class Schedule:
    """One scheduled send. `state` is one of deliver.schedule.State's words."""

    id: int
    issue: str  # slug
    issue_path: str  # the file rendered again at send time (absolute)
    at: dt.datetime  # UTC
    state: str
    content_hash: str  # of the content approved when it was scheduled
    scheduled_by: str  # user@host
    created_at: dt.datetime
    detail: str | None = None  # why it was refused, missed or failed; the send's summary
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    runner: str | None = None  # user@host:pid of the process that started it
    offline: bool = False  # the checks at send time skip link requests (as `--offline`)
    force: bool = False  # scheduled with --force: check errors do not stop it


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _schedule(row: Sequence[Any]) -> Schedule:
    (id_, issue, path, at, state, digest, by, created, detail, started, finished, runner,
     offline, force) = row
    return Schedule(id_, issue, path, _time(at), state, digest, by, _time(created), detail,
                    _time(started), _time(finished), runner, bool(offline), bool(force))


class Schedules:
    """The scheduled sends and stop requests of one connection (see `Store.schedules`)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _select(self, where: str, params: Sequence[Any] = ()) -> list[Schedule]:
        rows = self.conn.execute(f"SELECT {_COLUMNS} FROM schedules {where}", params)
        return [_schedule(r) for r in rows]

    def add(self, *, issue: str, issue_path: str, at: dt.datetime, content_hash: str,
            scheduled_by: str, offline: bool = False, force: bool = False) -> Schedule:
        """Record a scheduled send; StoreError when the issue already has one waiting."""
        with self.conn.transaction():
            waiting = self._select("WHERE issue = ? AND state = 'scheduled'", (issue,))
            if waiting:
                raise StoreError(f"{issue} is already scheduled for {iso(waiting[0].at)}:"
                                 " cancel it first (`newsletter schedule cancel`)", field="--at")
            self.conn.execute(
                "INSERT INTO schedules (issue, issue_path, send_at, state, content_hash,"
                " scheduled_by, created_at, offline, forced)"
                " VALUES (?, ?, ?, 'scheduled', ?, ?, ?, ?, ?)",
                (issue, issue_path, iso(at), content_hash, scheduled_by, now(), int(offline),
                 int(force)))
            return self._select("WHERE issue = ? AND state = 'scheduled'", (issue,))[0]

    def get(self, schedule_id: int) -> Schedule | None:
        found = self._select("WHERE id = ?", (schedule_id,))
        return found[0] if found else None

    def all(self, *, issue: str | None = None) -> list[Schedule]:
        """Every schedule (of `issue`), by time."""
        if issue is None:
            return self._select("ORDER BY send_at, id")
        return self._select("WHERE issue = ? ORDER BY send_at, id", (issue,))

    def due(self, when: dt.datetime) -> list[Schedule]:
        """Schedules still waiting whose time has come."""
        return self._select("WHERE state = 'scheduled' AND send_at <= ? ORDER BY send_at, id",
                            (iso(when),))

    def running(self) -> list[Schedule]:
        return self._select("WHERE state = 'running' ORDER BY id")

    def claim(self, schedule_id: int, runner: str, when: dt.datetime) -> bool:
        """Move one schedule from scheduled to running for `runner`; False when someone
        else did first (or it was cancelled meanwhile). The one place a schedule starts."""
        return self.conn.execute(
            "UPDATE schedules SET state = 'running', runner = ?, started_at = ?"
            " WHERE id = ? AND state = 'scheduled'",
            (runner, iso(when), schedule_id)).rowcount == 1

    def settle(self, schedule_id: int, state: str, detail: str | None, *, expect: str,
               when: dt.datetime | None = None) -> bool:
        """Move a schedule from `expect` to a final `state` with its reason or summary;
        False when it was not in `expect` any more."""
        return self.conn.execute(
            "UPDATE schedules SET state = ?, detail = ?, finished_at = ?"
            " WHERE id = ? AND state = ?",
            (state, detail, iso(when) if when else now(), schedule_id, expect)).rowcount == 1

    def cancel(self, issue: str, by: str) -> Schedule | None:
        """Cancel the issue's waiting schedule; None when there is none."""
        with self.conn.transaction():
            waiting = self._select("WHERE issue = ? AND state = 'scheduled'", (issue,))
            if not waiting:
                return None
            self.conn.execute(
                "UPDATE schedules SET state = 'cancelled', detail = ?, finished_at = ?"
                " WHERE id = ?", (f"cancelled by {by}", now(), waiting[0].id))
            return self.get(waiting[0].id)

    # -- stop requests -------------------------------------------------------------------
    def request_stop(self, issue: str, by: str) -> None:
        """Ask every running send of `issue` to stop after its current batch."""
        with self.conn.transaction():
            self.conn.execute("DELETE FROM stop_requests WHERE issue = ?", (issue,))
            self.conn.execute("INSERT INTO stop_requests (issue, requested_by, requested_at)"
                              " VALUES (?, ?, ?)", (issue, by, now()))

    def stop_requested(self, issue: str) -> str | None:
        """`by at time` of the stop request for `issue`, or None."""
        row = self.conn.execute("SELECT requested_by, requested_at FROM stop_requests"
                                " WHERE issue = ?", (issue,)).fetchone()
        return f"{row[0]} at {row[1]}" if row else None

    def clear_stop(self, issue: str) -> bool:
        """A new send of `issue` resumes it: forget an earlier stop request."""
        return self.conn.execute("DELETE FROM stop_requests WHERE issue = ?",
                                 (issue,)).rowcount > 0

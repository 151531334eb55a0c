"""What every table owner and backend shares: statuses, the time format, addresses, and the
connection interface a backend provides (see the package docstring)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from email_validator import EmailNotValidError, validate_email

# Subscriber statuses
PENDING = "pending"  # signed up, not confirmed yet (double opt-in)
ACTIVE = "active"
UNSUBSCRIBED = "unsubscribed"
SUPPRESSED = "suppressed"  # bounced or complained: never send
SUBSCRIBER_STATUSES = (PENDING, ACTIVE, UNSUBSCRIBED, SUPPRESSED)
INACTIVE = (UNSUBSCRIBED, SUPPRESSED)  # asked to stop, or the provider says stop: never sent

# Ledger states (anymail's vocabulary plus the two of our own loop)
IN_FLIGHT = "in_flight"
LEDGER_STATES = ("pending", IN_FLIGHT, "sent", "queued", "failed", "rejected", "unknown")
DONE_STATES = ("sent", "queued", "rejected")  # never sent again


class Cursor(Protocol):
    """What `Connection.execute` returns: a DB-API cursor. Rows are indexed by position."""

    rowcount: int

    def fetchone(self) -> Sequence[Any] | None: ...
    def fetchall(self) -> list[Sequence[Any]]: ...
    def __iter__(self) -> Iterator[Sequence[Any]]: ...


class Connection(Protocol):
    """One database connection of a backend, as the table owners use it."""

    # The column that numbers a table's rows in insertion order ("rowid" in SQLite).
    row_id: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...
    def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> int: ...
    def execute_in(self, sql: str, params: Sequence[Any], values: Sequence[Any]) -> int: ...
    def transaction(self) -> AbstractContextManager[Connection]: ...
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    @property
    def in_transaction(self) -> bool: ...
    def change_mark(self) -> object: ...
    def analyze(self, table: str, only_if_empty: bool = False) -> None: ...
    def close(self) -> None: ...


def now() -> str:
    """ISO-8601 UTC, second precision: the format of every time in the database."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def iso(moment: dt.datetime) -> str:
    """A datetime in the database's time format (naive means UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


# A plain ASCII dot-atom address already in lower case: email-validator accepts it and
# normalises it to itself, so the hot paths (one-click unsubscribes, webhook batches, whose
# addresses we wrote ourselves) can skip its ~100 us per call.
_PLAIN = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)


def normalise_email(address: str) -> str:
    """Validate and normalise an address, or raise ValueError with the reason.

    email-validator checks the syntax (no DNS: check_deliverability=False) and normalises the
    domain (IDNA, lower case); we also lower-case the local part, because every mailbox
    provider that matters treats it case-insensitively and two rows for Ann@ and ann@ would
    mean two copies.
    """
    # (Not for an IDNA "xn--" domain: email-validator writes it in Unicode, and the slow path
    # must give the one spelling, or d@xn--bcher-kva.example and d@bücher.example would be two
    # subscribers and a webhook event for the former would match nobody.)
    if (len(address) <= 254 and _PLAIN.fullmatch(address)
            and len(address.partition("@")[0]) <= 64 and "xn--" not in address):
        return address
    try:
        info = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return info.normalized.lower()

"""The `subscribers` table: every status change of an address, and the only SQL on it.

Statuses: pending (asked, not confirmed), active (sent to), unsubscribed (asked to stop),
suppressed (the provider reported a bounce, a rejection or a complaint). Only `active` is
sent to. Addresses are stored normalised (`normalise_email`); the methods expect that.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields

from newsletter.errors import StoreError
from newsletter.store.common import (
    ACTIVE,
    INACTIVE,
    PENDING,
    SUBSCRIBER_STATUSES,
    SUPPRESSED,
    UNSUBSCRIBED,
    Connection,
    now,
)


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str | None
    status: str
    status_reason: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    unsubscribed_at: str | None = None
    consent_at: str | None = None
    consent_source: str | None = None
    consent_ip: str | None = None
    consent_form: str | None = None
    confirmed_at: str | None = None
    confirm_ip: str | None = None  # where an imported export's tool saw the confirmation
    source_file: str | None = None  # the imported file this subscriber came from


_COLUMNS = ", ".join(f.name for f in fields(Subscriber))
_IN_CHUNK = 500  # addresses per IN (...) list


@dataclass(frozen=True)
class SubscribeOutcome:
    email: str
    status: str  # the status after the request (an unsubscribed address stays unsubscribed)
    send_confirmation: bool  # False when already active


@dataclass(frozen=True)
class ImportRow:
    """One row of an imported file, as the importer mapped it (address normalised)."""

    line: int
    email: str
    status: str
    name: str | None = None
    has_name: bool = True  # the file has names (without them a known name is kept)
    status_reason: str | None = None
    created_at: str | None = None
    unsubscribed_at: str | None = None
    consent_at: str | None = None
    consent_source: str | None = None
    consent_ip: str | None = None
    consent_form: str | None = None
    confirmed_at: str | None = None
    confirm_ip: str | None = None
    source_file: str | None = None
    resubscribe: bool = False  # fresh consent: re-activate if unsubscribed or suppressed


# What an import did with one row (`Subscribers.upsert_imported`):
ADDED = "added"  # new, with the row's status
OPTED_OUT = "opted_out"  # was active or pending here, the file says opted out: now so
RESUBSCRIBED = "resubscribed"
KEPT_UNSUBSCRIBED = "kept_unsubscribed"  # the file says active, but they opted out here
UPDATED = "updated"
UNCHANGED = "unchanged"
REPEAT = "repeat"  # the address appeared earlier in the same file


@dataclass(frozen=True)
class ImportOutcome:
    kind: str
    status: str  # the subscriber's status after the write ("" for a repeat)
    first_line: int = 0  # for a repeat: the line the address first appeared on


class Subscribers:
    """The subscribers of one connection (see `Store.subscribers`)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- reading -------------------------------------------------------------------------
    def get(self, email: str) -> Subscriber | None:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM subscribers WHERE email = ?",
                                (email,)).fetchone()
        return Subscriber(*row) if row else None

    def status(self, email: str) -> str | None:
        row = self.conn.execute("SELECT status FROM subscribers WHERE email = ?",
                                (email,)).fetchone()
        return row[0] if row else None

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(SUBSCRIBER_STATUSES, 0)
        for status, count in self.conn.execute(
                "SELECT status, COUNT(*) FROM subscribers GROUP BY status"):
            counts[status] = count
        return counts

    def list(self, status: str | None = None, batch: int = 1000) -> Iterator[Subscriber]:
        """Every subscriber (or those with `status`) ordered by id, read in keyset pages."""
        for page in self.pages(status, batch):
            yield from page

    def pages(self, status: str | None = None, batch: int = 1000
              ) -> Iterator[list[Subscriber]]:
        """Subscribers in lists of `batch`, ordered by id; memory stays flat."""
        # Keyset pagination (id > last) rather than OFFSET: each page is an index seek, and
        # rows added or removed meanwhile never shift a page.
        last = 0
        where = "AND status = ?" if status else ""
        while True:
            params: tuple = (last, status, batch) if status else (last, batch)
            rows = self.conn.execute(
                f"SELECT {_COLUMNS} FROM subscribers WHERE id > ? {where} ORDER BY id LIMIT ?",
                params).fetchall()
            if not rows:
                return
            yield [Subscriber(*r) for r in rows]
            last = rows[-1][0]

    # -- adding --------------------------------------------------------------------------
    def add(self, email: str, name: str | None = None, *, status: str = ACTIVE,
            consent_source: str | None = None, consent_ip: str | None = None,
            consent_form: str | None = None, consent_at: str | None = None) -> Subscriber:
        """Insert a new subscriber; StoreError if the address is there already."""
        if status not in SUBSCRIBER_STATUSES:
            raise StoreError(f"unknown subscriber status {status!r}", field="status")
        stamp = now()
        cur = self.conn.execute(
            "INSERT INTO subscribers (email, name, status, created_at, updated_at, consent_at,"
            " consent_source, consent_ip, consent_form, confirmed_at, unsubscribed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (email, name, status, stamp, stamp, consent_at or stamp, consent_source,
             consent_ip, consent_form, stamp if status == ACTIVE else None,
             stamp if status in INACTIVE else None))
        if not cur.rowcount:
            raise StoreError(f"{email} is already a subscriber", field="email")
        found = self.get(email)
        assert found is not None
        return found

    def add_many(self, people: Iterable[tuple[str, str | None]], source: str) -> int:
        """Add active subscribers (email, name) in one statement, skipping addresses that
        are there already (a fast bulk load, e.g. for benchmarks). Returns the number added."""
        stamp = now()
        with self.conn.transaction():
            added = self.conn.execute_many(
                "INSERT INTO subscribers (email, name, status, created_at, updated_at,"
                " consent_at, consent_source, confirmed_at)"
                " VALUES (?, ?, 'active', ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                ((email, name, stamp, stamp, stamp, source, stamp) for email, name in people))
        if added:
            self.conn.analyze("subscribers")  # see importing()
        return added

    # -- status changes ------------------------------------------------------------------
    def unsubscribe(self, email: str, reason: str) -> str | None:
        """Mark the address unsubscribed at once: "unsubscribed" (it was on the list),
        "recorded" (it was not) or None (nothing changed).

        Idempotent: a second call keeps the first time and reason; a suppressed address stays
        suppressed (it is not sent to either way). An address not on the list is recorded as
        unsubscribed, so a later import cannot quietly start sending to it. A send in progress
        checks every recipient's status when it claims them, so this takes effect at once.
        Each statement is right on its own (no transaction needed: on PostgreSQL one round
        trip for a one-click unsubscribe).
        """
        when = now()
        update = ("UPDATE subscribers SET status = ?, status_reason = ?, unsubscribed_at = ?,"
                  " updated_at = ? WHERE email = ? AND status NOT IN (?, ?)")
        params = (UNSUBSCRIBED, reason, when, when, email, UNSUBSCRIBED, SUPPRESSED)
        if self.conn.execute(update, params).rowcount:
            return "unsubscribed"
        if self.conn.execute(
                "INSERT INTO subscribers (email, status, status_reason, created_at, updated_at,"
                " unsubscribed_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (email, UNSUBSCRIBED, reason, when, when, when)).rowcount:
            return "recorded"
        # Added meanwhile by someone else (a form, an import) as active or pending: once more.
        return "unsubscribed" if self.conn.execute(update, params).rowcount else None

    def suppress(self, email: str, reason: str, status: str = SUPPRESSED) -> bool:
        """A provider's word (bounce, rejection, complaint: `suppressed`; its own unsubscribe
        list: `unsubscribed`) ends sending to an active or pending address. True if changed;
        an address not on the list is left alone."""
        if status not in INACTIVE:
            raise StoreError(f"cannot suppress to {status!r}", field="status")
        when = now()
        cur = self.conn.execute(
            "UPDATE subscribers SET status = ?, status_reason = ?, updated_at = ?,"
            " unsubscribed_at = COALESCE(unsubscribed_at, ?)"
            " WHERE email = ? AND status IN (?, ?)",
            (status, reason, when, when, email, ACTIVE, PENDING))
        return bool(cur.rowcount)

    def set_status(self, email: str, status: str, reason: str | None = None) -> bool:
        """Set a status outright (an operator's correction); False when there is no such
        address. The web, the webhook and imports use the methods above instead."""
        if status not in SUBSCRIBER_STATUSES:
            raise StoreError(f"unknown subscriber status {status!r}", field="status")
        stamp = now()
        off = stamp if status in INACTIVE else None
        cur = self.conn.execute(
            "UPDATE subscribers SET status = ?, status_reason = ?, updated_at = ?,"
            " unsubscribed_at = CASE WHEN ? IS NULL THEN NULL"
            "   ELSE COALESCE(unsubscribed_at, ?) END WHERE email = ?",
            (status, reason, stamp, off, off, email))
        return cur.rowcount > 0

    def subscribe_request(self, email: str, name: str | None, ip: str | None,
                          form: str | None) -> SubscribeOutcome:
        """Record a subscription request and its consent details; the address is not sent
        to until `confirm`.

        - new address: a `pending` row with consent_at/source/ip/form;
        - pending: the request details are refreshed and a new confirmation is due;
        - unsubscribed or suppressed: the status stays as it is (nothing is sent to it) but
          the request is recorded with confirmed_at cleared, so only the confirmation link
          re-activates;
        - active: nothing changes (an unverified form post must not rewrite a consent record).
        """
        when = now()
        with self.conn.transaction():
            status = self.status(email)
            if status is None:
                self.conn.execute(
                    "INSERT INTO subscribers (email, name, status, created_at, updated_at,"
                    " consent_at, consent_source, consent_ip, consent_form)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'form', ?, ?)",
                    (email, name, PENDING, when, when, when, ip, form))
                return SubscribeOutcome(email, PENDING, True)
            if status == ACTIVE:
                return SubscribeOutcome(email, ACTIVE, False)
            self.conn.execute(
                "UPDATE subscribers SET name = COALESCE(?, name), updated_at = ?,"
                " consent_at = ?, consent_source = 'form', consent_ip = ?, consent_form = ?,"
                " confirmed_at = NULL WHERE email = ?",
                (name, when, when, ip, form, email))
            return SubscribeOutcome(email, status, True)

    def confirm(self, email: str) -> str:
        """Activate an address that has an open form request (this is the resubscribe of a
        web visitor). Returns 'confirmed', 'already' (active before), or 'nothing' (no open
        request: e.g. an old confirmation link clicked after unsubscribing, which must not
        re-subscribe)."""
        when = now()
        cur = self.conn.execute(
            "UPDATE subscribers SET status = ?, status_reason = NULL, confirmed_at = ?,"
            " updated_at = ?, unsubscribed_at = NULL WHERE email = ? AND status != ?"
            " AND confirmed_at IS NULL AND consent_source = 'form'",
            (ACTIVE, when, when, email, ACTIVE))
        if cur.rowcount:
            return "confirmed"
        return "already" if self.status(email) == ACTIVE else "nothing"

    # -- imports -------------------------------------------------------------------------
    @contextmanager
    def importing(self) -> Iterator[None]:
        """Around the writes of one imported file: the addresses seen so far live in a
        temporary table of this connection (on disk: memory stays flat for any file)."""
        self.conn.execute("DROP TABLE IF EXISTS import_seen")
        self.conn.execute("CREATE TEMPORARY TABLE import_seen"
                          " (email TEXT PRIMARY KEY, line INTEGER NOT NULL)")
        try:
            yield
        finally:
            self.conn.execute("DROP TABLE IF EXISTS import_seen")
        # Statistics taken by autovacuum while the import was uncommitted count the table as
        # empty until its next round (a minute later): a send started meanwhile would plan
        # its claims' join to the subscribers as a scan of all of them per row.
        self.conn.analyze("subscribers")

    def upsert_imported(self, rows: Sequence[ImportRow]) -> list[ImportOutcome]:
        """One chunk of an import (inside `importing()`), in one transaction; one outcome
        per row. The rules that protect consent:

        - a new address is added with the status and consent record of its row;
        - someone unsubscribed or suppressed here stays so; only a row that says
          `resubscribe` (fresh consent) re-activates them, with the row's consent record;
        - an active or pending subscriber whose row says opted out takes that status;
        - a pending subscriber the file lists as active becomes active (whoever holds the
          consent record for the file listed them); otherwise only the name may change;
        - an address seen earlier in the file is not written again (REPEAT).
        """
        for row in rows:
            if row.status not in SUBSCRIBER_STATUSES:
                raise StoreError(f"unknown subscriber status {row.status!r}", field="status")
        stamp = now()
        emails = [row.email for row in rows]
        outcomes: list[ImportOutcome] = []
        with self.conn.transaction():
            seen: dict[str, int] = {}
            current: dict[str, tuple[str | None, str]] = {}
            for start in range(0, len(emails), _IN_CHUNK):
                part = emails[start:start + _IN_CHUNK]
                marks = ",".join("?" * len(part))
                seen.update(self.conn.execute(
                    f"SELECT email, line FROM import_seen WHERE email IN ({marks})", part))
                current.update((email, (name, status)) for email, name, status in
                               self.conn.execute("SELECT email, name, status FROM subscribers"
                                                 f" WHERE email IN ({marks})", part))
            new_seen: list[tuple[str, int]] = []
            inserts: list[tuple] = []
            for row in rows:
                if row.email in seen:
                    outcomes.append(ImportOutcome(REPEAT, "", seen[row.email]))
                    continue
                seen[row.email] = row.line
                new_seen.append((row.email, row.line))
                if row.email in current:
                    outcomes.append(self._merge(row, *current[row.email], stamp))
                    continue
                off = row.status in INACTIVE
                inserts.append((
                    row.email, row.name, row.status, row.status_reason,
                    row.created_at or stamp, stamp, (row.unsubscribed_at or stamp) if off else None,
                    row.consent_at or stamp, row.consent_source, row.consent_ip, row.consent_form,
                    row.confirmed_at, row.confirm_ip, row.source_file))
                outcomes.append(ImportOutcome(ADDED, row.status))
            if new_seen:
                self.conn.execute_many("INSERT INTO import_seen (email, line) VALUES (?, ?)",
                                       new_seen)
            if inserts:
                self.conn.execute_many(
                    "INSERT INTO subscribers (email, name, status, status_reason, created_at,"
                    " updated_at, unsubscribed_at, consent_at, consent_source, consent_ip,"
                    " consent_form, confirmed_at, confirm_ip, source_file)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", inserts)
        return outcomes

    def _merge(self, row: ImportRow, name: str | None, status: str,
               stamp: str) -> ImportOutcome:
        new_name = row.name if row.has_name and row.name else name
        if status in INACTIVE:
            if row.status == ACTIVE and row.resubscribe:
                self.conn.execute(
                    "UPDATE subscribers SET status = ?, status_reason = ?, name = ?,"
                    " updated_at = ?, unsubscribed_at = NULL, consent_at = ?,"
                    " consent_source = ?, consent_ip = ?, consent_form = ?, confirmed_at = ?,"
                    " confirm_ip = ?, source_file = ? WHERE email = ?",
                    (ACTIVE, f"resubscribed by {row.consent_source}", new_name, stamp,
                     row.consent_at or stamp, row.consent_source, row.consent_ip,
                     row.consent_form, row.confirmed_at, row.confirm_ip, row.source_file,
                     row.email))
                return ImportOutcome(RESUBSCRIBED, ACTIVE)
            if row.status in (ACTIVE, PENDING):
                return ImportOutcome(KEPT_UNSUBSCRIBED, status)
            return ImportOutcome(UNCHANGED, status)
        if row.status in INACTIVE:
            self.conn.execute(
                "UPDATE subscribers SET status = ?, status_reason = ?, name = ?,"
                " updated_at = ?, unsubscribed_at = ? WHERE email = ?",
                (row.status, row.status_reason, new_name, stamp, row.unsubscribed_at or stamp,
                 row.email))
            return ImportOutcome(OPTED_OUT, row.status)
        if status == PENDING and row.status == ACTIVE:
            self.conn.execute(
                "UPDATE subscribers SET status = ?, status_reason = NULL, name = ?,"
                " updated_at = ?, consent_at = ?, consent_source = ?, consent_ip = ?,"
                " consent_form = ?, confirmed_at = ?, confirm_ip = ?, source_file = ?"
                " WHERE email = ?",
                (ACTIVE, new_name, stamp, row.consent_at or stamp, row.consent_source,
                 row.consent_ip, row.consent_form, row.confirmed_at or stamp, row.confirm_ip,
                 row.source_file, row.email))
            return ImportOutcome(UPDATED, ACTIVE)
        if new_name != name:
            self.conn.execute("UPDATE subscribers SET name = ?, updated_at = ? WHERE email = ?",
                              (new_name, stamp, row.email))
            return ImportOutcome(UPDATED, status)
        return ImportOutcome(UNCHANGED, status)

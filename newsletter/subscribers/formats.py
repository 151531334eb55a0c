"""Subscriber CSV files from other tools: recognise the export by its header, map each row to
a neutral `Row` (address, name, status, consent record).

Pure functions, no database: `importing.py` streams the rows into the store. Every format
keeps the export's own consent times and addresses; a row its tool marks as opted out,
blocklisted, cleaned, disabled or bounced never maps to `active`.

Formats (headers are matched case-insensitively, surrounding spaces ignored):

- Mailchimp audience export (`Email Address`, `First Name`, `Last Name`, `OPTIN_TIME`,
  `OPTIN_IP`, `CONFIRM_TIME`, `CONFIRM_IP`, `MEMBER_RATING`, `LAST_CHANGED`, `LEID`, `EUID`,
  ...): the subscribed file is active; the unsubscribed file (`UNSUB_TIME`,
  `UNSUB_CAMPAIGN_TITLE`, `UNSUB_REASON`, ...) unsubscribed; the cleaned file (`CLEAN_TIME`,
  `CLEAN_CAMPAIGN_TITLE`, ...) suppressed.
- Substack (`email`, `active_subscription`, `expiry`, `plan`, `email_disabled`,
  `created_at`, ...): `email_disabled=true` or `active_subscription=false` is unsubscribed.
- listmonk (`uuid`, `email`, `name`, `attributes`, `status`, `created_at`, `updated_at`):
  `enabled` is active; `blocklisted` and `disabled` are unsubscribed.
- Buttondown (`email`, `notes`, `metadata`, `tags`, `subscriber_type` or `type`,
  `creation_date`, ...): `unsubscribed`/`removed`/`paused` are unsubscribed, `spammy`,
  `undeliverable` and `bounced` suppressed, `unactivated` pending (never confirmed).
- This tool's own export (`email`, `name`, `status`, ... `consent_source`): statuses and the
  consent record as written, so an export imports back unchanged.
- Any other CSV: an `email` column (optional `name`, `resubscribe`), or the columns named by
  the caller.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

# Statuses (the store's vocabulary)
ACTIVE = "active"
PENDING = "pending"
UNSUBSCRIBED = "unsubscribed"
SUPPRESSED = "suppressed"
STATUSES = (PENDING, ACTIVE, UNSUBSCRIBED, SUPPRESSED)

TRUE_WORDS = frozenset({"1", "y", "yes", "true", "t", "x"})
FALSE_WORDS = frozenset({"0", "n", "no", "false", "f"})
DELIMITERS = (",", ";", "\t")
MAX_NAME = 200  # a display name, not a document: keeps the To: header far below 998 chars
MAX_TEXT = 500  # any other kept value (reasons, IP addresses, form names)

# The columns of `subscribers export`, in order. The importer recognises them as its own.
EXPORT_COLUMNS = (
    "email", "name", "status", "status_reason", "created_at", "updated_at",
    "unsubscribed_at", "consent_at", "consent_source", "consent_ip", "consent_form",
    "confirmed_at", "confirm_ip", "source_file",
)


class FormatError(ValueError):
    """The file cannot be read as any known format (message for the user; line 1)."""


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~2x to build, per row
class Row:
    """One subscriber as an export describes them, before validation against the store.

    `email` is as written (the importer validates and normalises it). Times are ISO 8601 UTC
    (`2019-03-12T14:22:01Z`) when the export's time could be read, else its text as written.
    `consent_source` None means "this import" (the importer fills in the file).
    """

    email: str
    status: str = ACTIVE
    name: str | None = None
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
    resubscribe: bool = False  # the row asks to re-activate someone who opted out here
    skip: str | None = None  # why this row cannot be imported (reported with its line)


Mapper = Callable[[Sequence[str]], Row]


@dataclass(frozen=True)
class Format:
    """A recognised file: its name for people and the function from raw cells to `Row`."""

    key: str  # mailchimp, substack, listmonk, buttondown, newsletter, csv
    label: str  # "Mailchimp (unsubscribed)"
    map: Mapper
    has_name: bool  # whether rows carry a name (without one, a re-import keeps the old name)


# -- small helpers -------------------------------------------------------------------------


def clean_name(value: str | None) -> str | None:
    """A display name on one line: control characters (line breaks, terminal escapes) become
    spaces, runs of whitespace one space, and the length is capped."""
    if not value:
        return None
    if value.isprintable():  # the usual case: only spaces to tidy
        return " ".join(value.split())[:MAX_NAME].strip() or None
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in value)
    return " ".join(text.split())[:MAX_NAME].strip() or None


def clean_text(value: str | None) -> str | None:
    """A kept value (reason, IP, form) on one line, capped; empty -> None."""
    if not value:
        return None
    if value.isprintable() and len(value) <= MAX_TEXT and "  " not in value:
        return value.strip() or None
    text = value if value.isprintable() else "".join(
        " " if unicodedata.category(c)[0] == "C" else c for c in value)
    return " ".join(text.split())[:MAX_TEXT] or None


# `2019-03-12 14:22:01`, `2021-03-04T12:34:56.789Z`, `2020-08-19 09:05:55.345+00`: UTC
_PLAIN_TIME = re.compile(
    r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.\d+)?(?:Z|[+-]00(?::?00)?)?")


def parse_time(value: str | None) -> str | None:
    """An export's time as `YYYY-MM-DDTHH:MM:SSZ` (UTC; a time without an offset is taken as
    UTC, which is what Mailchimp, Substack, listmonk and Buttondown write); text that is not
    a time is kept as written rather than lost."""
    if not value or not value.strip():
        return None
    text = value.strip()
    plain = _PLAIN_TIME.fullmatch(text)
    if plain:  # already UTC: spare the datetime round trip (an import reads millions)
        return f"{plain[1]}T{plain[2]}Z"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return clean_text(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    moment = moment.astimezone(dt.UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in TRUE_WORDS


def _headers(raw: Sequence[str]) -> list[str]:
    # A BOM the decoder left (a file saved twice by Excel) and quotes around names are noise.
    return [h.replace("\ufeff", "").strip().strip('"').strip().lower() for h in raw]


class _Cells:
    """Column lookup by lower-cased header name for one file, built once."""

    def __init__(self, headers: Sequence[str]) -> None:
        self.index = {}
        for i, name in enumerate(headers):
            self.index.setdefault(name, i)

    def __contains__(self, name: str) -> bool:
        return name in self.index

    def picker(self, *names: str) -> Callable[[Sequence[str]], list[str | None]]:
        """One call per row for several columns (stripped; None when empty or absent)."""
        where = [self.index.get(name) for name in names]
        present = [i for i in where if i is not None]
        width = max(present, default=-1) + 1
        slots = [None if i is None else present.index(i) for i in where]
        take = itemgetter(*present) if len(present) > 1 else (
            (lambda cells: (cells[present[0]],)) if present else (lambda cells: ()))

        def pick(cells: Sequence[str]) -> list[str | None]:
            if len(cells) < width:  # a short row
                cells = [*cells, *[""] * (width - len(cells))]
            got = [v.strip() or None for v in take(cells)]
            return [None if k is None else got[k] for k in slots]

        return pick

    def getter(self, name: str) -> Callable[[Sequence[str]], str | None]:
        i = self.index.get(name)
        if i is None:
            return lambda cells: None

        def get(cells: Sequence[str]) -> str | None:
            try:
                return cells[i].strip() or None
            except IndexError:  # a short row
                return None

        return get


# -- the formats ---------------------------------------------------------------------------


def _mailchimp(cols: _Cells) -> Format:
    if "unsub_time" in cols:
        status, kind = UNSUBSCRIBED, "unsubscribed"
        extra = ("unsub_time", "unsub_campaign_title", "unsub_reason", "unsub_reason_other")
    elif "clean_time" in cols:
        status, kind = SUPPRESSED, "cleaned"
        extra = ("clean_time", "clean_campaign_title", "", "")
    else:
        status, kind = ACTIVE, "subscribed"
        extra = ("", "", "", "")
    pick = cols.picker("email address", "first name", "last name", "optin_time", "optin_ip",
                       "confirm_time", "confirm_ip", *extra)

    def row(cells: Sequence[str]) -> Row:
        (email, first, last, optin_time, optin_ip, confirm_time, confirm_ip, when, campaign,
         reason, other) = pick(cells)
        optin = parse_time(optin_time)
        confirmed = parse_time(confirm_time)
        why = None
        if status != ACTIVE:
            said = "; ".join(filter(None, (reason, other)))
            why = clean_text(f"{kind} in Mailchimp" + (f" ({campaign})" if campaign else "")
                             + (f": {said}" if said else ""))
        return Row(
            email=email or "",
            status=status,
            name=clean_name(f"{first} {last}" if first and last else first or last),
            status_reason=why,
            created_at=optin,
            unsubscribed_at=parse_time(when),
            consent_at=optin or confirmed,
            consent_ip=clean_text(optin_ip),
            confirmed_at=confirmed,
            confirm_ip=clean_text(confirm_ip),
        )

    return Format("mailchimp", f"Mailchimp {kind} export", row, has_name=True)


def _substack(cols: _Cells) -> Format:
    email, created = cols.getter("email"), cols.getter("created_at")
    disabled, active = cols.getter("email_disabled"), cols.getter("active_subscription")
    name = cols.getter("name")

    def row(cells: Sequence[str]) -> Row:
        status, reason = ACTIVE, None
        if is_true(disabled(cells)):
            status, reason = UNSUBSCRIBED, "email disabled in Substack"
        elif (active(cells) or "").lower() in FALSE_WORDS:
            status, reason = UNSUBSCRIBED, "subscription not active in Substack"
        when = parse_time(created(cells))
        return Row(email=email(cells) or "", status=status, name=clean_name(name(cells)),
                   status_reason=reason, created_at=when, consent_at=when)

    return Format("substack", "Substack export", row, has_name="name" in cols)


_LISTMONK = {"enabled": (ACTIVE, None),
             "blocklisted": (UNSUBSCRIBED, "blocklisted in listmonk"),
             "blacklisted": (UNSUBSCRIBED, "blocklisted in listmonk"),  # before v1.0
             "disabled": (UNSUBSCRIBED, "disabled in listmonk")}
# A per-list export adds the subscription's own status.
_LISTMONK_SUB = {"unsubscribed": (UNSUBSCRIBED, "unsubscribed from the list in listmonk"),
                 "unconfirmed": (PENDING, "unconfirmed in listmonk")}


def _listmonk(cols: _Cells) -> Format:
    email, name, status_of = cols.getter("email"), cols.getter("name"), cols.getter("status")
    created, attributes = cols.getter("created_at"), cols.getter("attributes")
    updated = cols.getter("updated_at")  # for a blocklisted row: when that happened
    subscription = cols.getter("subscription_status")

    def row(cells: Sequence[str]) -> Row:
        value = (status_of(cells) or "").lower()
        if value not in _LISTMONK:
            return Row(email=email(cells) or "", status=UNSUBSCRIBED,
                       skip=f"status: unknown listmonk status {value!r}")
        status, reason = _LISTMONK[value]
        extra = _LISTMONK_SUB.get((subscription(cells) or "").lower())
        if status == ACTIVE and extra:
            status, reason = extra
        when = parse_time(created(cells))
        return Row(email=email(cells) or "", status=status, name=clean_name(name(cells)),
                   status_reason=reason, created_at=when, consent_at=when,
                   unsubscribed_at=parse_time(updated(cells)) if status != ACTIVE else None,
                   consent_ip=_attribute_ip(attributes(cells)))

    return Format("listmonk", "listmonk export", row, has_name=True)


def _attribute_ip(attributes: str | None) -> str | None:
    """listmonk keeps no consent IP of its own; some sign-up forms store one as an attribute."""
    if not attributes or "ip" not in attributes:
        return None
    try:
        data = json.loads(attributes)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    value = data.get("ip") or data.get("ip_address")
    return clean_text(value) if isinstance(value, str) else None


_BUTTONDOWN_ACTIVE = frozenset({"regular", "premium", "gifted", "trialed", "churning",
                                "past_due", "complimentary", "paid", "free"})
_BUTTONDOWN = {"unactivated": (PENDING, "never confirmed in Buttondown"),
               "unsubscribed": (UNSUBSCRIBED, "unsubscribed in Buttondown"),
               "removed": (UNSUBSCRIBED, "removed in Buttondown"),
               "paused": (UNSUBSCRIBED, "paused in Buttondown"),
               "spammy": (SUPPRESSED, "marked spammy in Buttondown"),
               "undeliverable": (SUPPRESSED, "undeliverable in Buttondown"),
               "bounced": (SUPPRESSED, "bounced in Buttondown"),
               "blocked": (SUPPRESSED, "blocked in Buttondown")}


def _buttondown(cols: _Cells) -> Format:
    email = cols.getter("email")
    kind = cols.getter("subscriber_type" if "subscriber_type" in cols else "type")
    created, ip = cols.getter("creation_date"), cols.getter("ip_address")
    name = cols.getter("name")

    def row(cells: Sequence[str]) -> Row:
        value = (kind(cells) or "regular").lower()
        if value in _BUTTONDOWN_ACTIVE:
            status, reason = ACTIVE, None
        elif value in _BUTTONDOWN:
            status, reason = _BUTTONDOWN[value]
        else:
            return Row(email=email(cells) or "", status=UNSUBSCRIBED,
                       skip=f"subscriber_type: unknown Buttondown type {value!r}")
        when = parse_time(created(cells))
        return Row(email=email(cells) or "", status=status, name=clean_name(name(cells)),
                   status_reason=reason, created_at=when, consent_at=when,
                   consent_ip=clean_text(ip(cells)))

    return Format("buttondown", "Buttondown export", row, has_name="name" in cols)


def _own(cols: _Cells) -> Format:
    get = {name: cols.getter(name) for name in EXPORT_COLUMNS}

    def row(cells: Sequence[str]) -> Row:
        value = (get["status"](cells) or "").lower()
        if value not in STATUSES:
            return Row(email=get["email"](cells) or "", status=UNSUBSCRIBED,
                       skip=f"status: {value!r} is not one of {', '.join(STATUSES)}")
        times = {k: parse_time(get[k](cells))
                 for k in ("created_at", "unsubscribed_at", "consent_at", "confirmed_at")}
        texts = {k: clean_text(get[k](cells))
                 for k in ("status_reason", "consent_source", "consent_ip", "consent_form",
                           "confirm_ip", "source_file")}
        return Row(email=get["email"](cells) or "", status=value,
                   name=clean_name(get["name"](cells)), **times, **texts)

    return Format("newsletter", "newsletter export", row, has_name=True)


def _plain(cols: _Cells, email_column: str, name_column: str | None) -> Format:
    email = cols.getter(email_column)
    name = cols.getter(name_column) if name_column else (lambda cells: None)
    again = cols.getter("resubscribe")

    def row(cells: Sequence[str]) -> Row:
        return Row(email=email(cells) or "", name=clean_name(name(cells)),
                   resubscribe=is_true(again(cells)))

    return Format("csv", "CSV", row, has_name=name_column is not None)


def recognise(raw_headers: Sequence[str], *, email_column: str | None = None,
              name_column: str | None = None) -> Format:
    """The format of a file from its header row, or FormatError saying what was found.

    Named columns win over recognition (a file someone reshaped by hand stays theirs).
    """
    headers = _headers(raw_headers)
    cols = _Cells(headers)
    found = ", ".join(repr(h) for h in headers if h) or "no header row"
    if email_column or name_column:
        email_key = (email_column or "email").strip().lower()
        name_key = name_column.strip().lower() if name_column else None
        for option, key in (("--email-column", email_key), ("--name-column", name_key)):
            if key is not None and key not in cols:
                raise FormatError(f"no {key!r} column for {option} (found: {found})")
        if name_key is None and "name" in cols:
            name_key = "name"
        return _plain(cols, email_key, name_key)
    if "email address" in cols and ("optin_time" in cols or "first name" in cols
                                    or "member_rating" in cols):
        return _mailchimp(cols)
    if "email" in cols and "status" in cols and "consent_source" in cols:
        return _own(cols)
    if "email" in cols and "uuid" in cols and "status" in cols:
        return _listmonk(cols)
    if "email" in cols and "email_disabled" in cols:
        return _substack(cols)
    if "email" in cols and ("subscriber_type" in cols or
                            ("type" in cols and "creation_date" in cols)):
        return _buttondown(cols)
    if "email" in cols:
        return _plain(cols, "email", "name" if "name" in cols else None)
    if "email address" in cols:  # any other tool's "Email Address" column
        return _plain(cols, "email address", "name" if "name" in cols else None)
    raise FormatError(f"no 'email' column (found: {found}; say which with --email-column)")


def sniff_delimiter(header_line: str) -> str:
    """Comma, semicolon or tab: whichever separates the header line into the most columns
    (outside quotes). A one-column file is comma-separated."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])  # ties: the order of DELIMITERS
    return best if counts[best] else ","


def export_row(record: Mapping[str, object]) -> list[str]:
    """One subscriber (a mapping with EXPORT_COLUMNS keys) as the cells of an export line."""
    return ["" if record.get(k) is None else str(record.get(k)) for k in EXPORT_COLUMNS]

"""Import subscribers from a CSV file.

The file needs an `email` column; `name` and `resubscribe` are optional (headers are matched
case-insensitively, other columns are ignored). It must be UTF-8 (a BOM, as Excel writes it,
is fine). Each address is validated and normalised (email-validator, no DNS look-up); a bad
row is reported with its line number and skipped, the rest are imported.

Re-importing updates the name and never creates a duplicate. An address that unsubscribed or
was suppressed (bounce, complaint) stays so, unless the row says so explicitly: a
`resubscribe` column holding yes/true/1 for that row, or `resubscribe=True` for the whole file
(`newsletter subscribers import --resubscribe`). Only do that with fresh consent: the new
consent record (source `import:<file name>`, time now) replaces the old one.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from newsletter.errors import StoreError
from newsletter.store import ImportRow, Store, normalise_email

TRUE_WORDS = {"1", "y", "yes", "true", "x"}
CHUNK = 1000  # rows per transaction: short write locks against the web app
PROGRESS_EVERY = 500  # rows between progress calls: often enough for a bar, cheap

Progress = Callable[[int, int | None], None]  # (rows done, total rows or None)


@dataclass
class ImportSummary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    resubscribed: int = 0
    kept_unsubscribed: list[str] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    def lines(self) -> list[str]:
        out = [
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.resubscribed} resubscribed, {len(self.kept_unsubscribed)} kept unsubscribed, "
            f"{len(self.skipped)} skipped"
        ]
        # `FILE.csv:LINE: email: ...` like every other located error (the CLI adds the file)
        out += [f"{line}: email: skipped: {reason}" for line, reason in self.skipped]
        return out


MAX_NAME = 200  # a display name, not a document: keeps the To: header far below 998 chars


def clean_name(value: str | None) -> str | None:
    """A display name on one line: control characters (line breaks, terminal escapes) become
    spaces, runs of whitespace one space, and the length is capped."""
    if not value:
        return None
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in value)
    return " ".join(text.split())[:MAX_NAME].strip() or None


def read_csv(path: Path) -> tuple[list[str], csv.DictReader]:
    """(lower-cased headers, reader) or StoreError naming the file."""
    return _reader(_decode(path), path)


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StoreError("file not found", file=path) from None
    except OSError as exc:
        raise StoreError(f"cannot read: {exc.strerror}", file=path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise StoreError(
            "not UTF-8 text (save the file as 'CSV UTF-8')", file=path, line=line
        ) from None


def _reader(text: str, path: Path) -> tuple[list[str], csv.DictReader]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    headers = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "email" not in headers:
        found = ", ".join(repr(h) for h in headers) or "no header row"
        raise StoreError(f"no 'email' column (found: {found})", file=path, line=1)
    reader.fieldnames = headers
    return headers, reader


def _data_lines(text: str) -> int:
    """Lines after the header, as the csv reader will count them (cheap: no parsing)."""
    # \r\n, \n and a lone \r each end a line (universal newlines, as the reader splits)
    ends = text.count("\n") + text.count("\r") - text.count("\r\n")
    lines = ends + (1 if text and not text.endswith(("\n", "\r")) else 0)
    return max(0, lines - 1)


def import_csv(store: Store, path: str | Path, *, resubscribe: bool = False,
               progress: Progress | None = None) -> ImportSummary:
    """Import one CSV file (see the module docstring for the rules).

    progress(done, total) is called every PROGRESS_EVERY rows and once at the end with
    done == total. Both count the file's lines after the header (so a quoted value with a
    line break in it counts twice); total comes from a line count taken before parsing.
    """
    path = Path(path)
    text = _decode(path)
    headers, reader = _reader(text, path)
    total = _data_lines(text)
    next_report = 0
    source = f"import:{path.name}"
    summary = ImportSummary()
    seen: dict[str, int] = {}
    rows: list[tuple[int, str, str | None, bool]] = []
    for row in reader:
        line = reader.line_num
        if progress is not None and line - 1 >= next_report:
            progress(line - 1, total)
            next_report = line - 1 + PROGRESS_EVERY
        raw_email = (row.get("email") or "").strip()
        if not raw_email and not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # a blank line
        if not raw_email:
            summary.skipped.append((line, "empty email"))
            continue
        try:
            email = normalise_email(raw_email)
        except ValueError as exc:
            summary.skipped.append((line, f"{raw_email!r}: {exc}"))
            continue
        if email in seen:
            summary.skipped.append((line, f"{email} repeats line {seen[email]}"))
            continue
        seen[email] = line
        name = clean_name(row.get("name")) if "name" in headers else None
        again = resubscribe or (row.get("resubscribe") or "").strip().lower() in TRUE_WORDS
        rows.append((line, email, name, again))
        if len(rows) >= CHUNK:
            _write(store, rows, source, "name" in headers, summary)
            rows = []
    if rows:
        _write(store, rows, source, "name" in headers, summary)
    if progress is not None:
        progress(total, total)
    return summary


def _write(store: Store, rows, source: str, has_name: bool, summary: ImportSummary) -> None:
    done = store.subscribers.upsert_imported(
        (ImportRow(email, name, has_name, again) for _line, email, name, again in rows), source)
    summary.added += len(done["added"])
    summary.updated += len(done["updated"])
    summary.unchanged += len(done["unchanged"])
    summary.resubscribed += len(done["resubscribed"])
    summary.kept_unsubscribed += done["kept_unsubscribed"]

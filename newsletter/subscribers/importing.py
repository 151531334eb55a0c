"""Import subscribers from a CSV file, and export them as one.

The file is an export of another newsletter tool as it comes (Mailchimp, Substack, listmonk,
Buttondown: recognised by its header, see `formats.py`), this tool's own export, or any CSV
with an `email` column (optional `name` and `resubscribe`) or columns named by the caller.
Comma, semicolon or tab separated; UTF-8 with or without a BOM. Each address is validated and
normalised (email-validator, no DNS look-up); a bad row is reported with its line number and
skipped, the rest are imported.

The file is read twice, as a stream: once to check it is UTF-8 and count its lines (so a
file with a bad byte imports nothing, and the progress bar knows the total), then parsed and
written in short transactions. Memory does not grow with the file.

What happens to each row (`Subscribers.upsert_imported` applies it): a new address gets the
status and consent record its export gives (times, IP addresses, which file); a row its tool
marks as opted out never becomes active; someone who unsubscribed or was suppressed here
stays so unless the row says `resubscribe` (or the whole file is imported with
`resubscribe=True`), which means fresh consent: then the row's consent record replaces the
old one. A plain CSV row's consent record is this import (`import:<file name>`, now).
"""

from __future__ import annotations

import codecs
import csv
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from newsletter import store as stores
from newsletter.errors import StoreError
from newsletter.store import Store
from newsletter.store.subscribers import (
    ADDED,
    KEPT_UNSUBSCRIBED,
    OPTED_OUT,
    REPEAT,
    RESUBSCRIBED,
    UNCHANGED,
    UPDATED,
    ImportRow,
)
from newsletter.subscribers import formats
from newsletter.subscribers.formats import (
    EXPORT_COLUMNS,
    MAX_NAME,
    FormatError,
    Row,
    clean_name,
)

__all__ = ["MAX_NAME", "ImportSummary", "clean_name", "export_csv", "import_csv"]

CHUNK = 500  # rows per transaction: short write locks against the web app
PROGRESS_EVERY = 500  # rows between progress calls: often enough for a bar, cheap
MAX_REPORTED = 1000  # skipped rows listed one by one; beyond that, only counted
_READ = 1 << 20  # bytes per read of the checking pass

Progress = Callable[[int, int | None], None]  # (rows done, total rows or None)


@dataclass
class ImportSummary:
    rows: int = 0
    format: str = "CSV"
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    resubscribed: int = 0
    added_by_status: Counter = field(default_factory=Counter)
    opted_out: Counter = field(default_factory=Counter)  # status -> rows (added or changed)
    opted_out_why: Counter = field(default_factory=Counter)  # "suppressed (cleaned)" -> rows
    kept_unsubscribed: list[str] = field(default_factory=list)
    kept_count: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    skipped_count: int = 0

    def headline(self) -> str:
        """`10 rows: 8 added active, 1 unsubscribed, 1 suppressed (cleaned); 0 skipped`."""
        parts = [f"{self.added_by_status[s]} added {s}" for s in (stores.ACTIVE, stores.PENDING)
                 if self.added_by_status[s] or s == stores.ACTIVE]
        for status in (stores.UNSUBSCRIBED, stores.SUPPRESSED):
            if self.opted_out[status]:
                whys = sorted(w.partition(" ")[2] for w in self.opted_out_why
                              if w.startswith(status) and w.partition(" ")[2])
                # a few short reasons say why; a list of bounce messages would not
                detail = ", ".join(whys) if len(whys) <= 3 and all(len(w) <= 20
                                                                   for w in whys) else ""
                parts.append(f"{self.opted_out[status]} {status}"
                             + (f" ({detail})" if detail else ""))
        for count, words in ((self.updated, "updated"), (self.unchanged, "unchanged"),
                             (self.resubscribed, "resubscribed"),
                             (self.kept_count, "kept unsubscribed")):
            if count:
                parts.append(f"{count} {words}")
        rows = f"{self.rows} row" + ("" if self.rows == 1 else "s")
        return f"{rows}: {', '.join(parts)}; {self.skipped_count} skipped"

    def lines(self) -> list[str]:
        out = [self.headline()]
        # `FILE.csv:LINE: email: ...` like every other located error (the CLI adds the file)
        out += [f"{line}: {reason}" for line, reason in self.skipped]
        if self.skipped_count > len(self.skipped):
            out.append(f"{self.skipped[-1][0]}: ... and {self.skipped_count - len(self.skipped)}"
                       " more skipped rows")
        return out

    def skip(self, line: int, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < MAX_REPORTED:
            self.skipped.append((line, reason))


# -- reading -------------------------------------------------------------------------------


def check_file(path: Path) -> tuple[int, str]:
    """(lines after the header, delimiter), or StoreError naming the file (and the line of
    the first byte that is not UTF-8). Reads the file once in blocks: memory stays flat."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    ends = 0
    line = 1
    first = ""
    last = b""
    try:
        with path.open("rb") as handle:
            while block := handle.read(_READ):
                try:
                    text = decoder.decode(block)
                except UnicodeDecodeError as exc:
                    line += block[: exc.start].count(b"\n")
                    raise StoreError("not UTF-8 text (save the file as 'CSV UTF-8')",
                                     file=path, line=line) from None
                if not first and ends == 0:
                    first += text
                # \r\n, \n and a lone \r each end a line (universal newlines, as csv splits)
                pair = 1 if last.endswith(b"\r") and block.startswith(b"\n") else 0
                ends += block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n") - pair
                line += block.count(b"\n")
                last = block[-1:]
            decoder.decode(b"", final=True)
    except FileNotFoundError:
        raise StoreError("file not found", file=path) from None
    except IsADirectoryError:
        raise StoreError("is a folder, not a CSV file", file=path) from None
    except UnicodeDecodeError:
        raise StoreError("not UTF-8 text (the file ends inside a character)",
                         file=path, line=line) from None
    except OSError as exc:
        raise StoreError(f"cannot read: {exc.strerror}", file=path) from None
    total = ends + (1 if last and last not in (b"\n", b"\r") else 0)
    header = first.removeprefix("\ufeff").splitlines()[0] if first.strip() else ""
    return max(0, total - 1), formats.sniff_delimiter(header)


def _open(path: Path) -> TextIO:
    # utf-8-sig drops a BOM; newline="" lets csv see line breaks inside quoted values.
    return path.open("r", encoding="utf-8-sig", newline="")


def _rows(handle: TextIO, delimiter: str, path: Path) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        for cells in reader:
            yield reader.line_num, cells
    except csv.Error as exc:
        raise StoreError(f"not a readable CSV file: {exc}", file=path,
                         line=reader.line_num) from None


# -- importing -----------------------------------------------------------------------------


def import_csv(store: Store, path: str | Path, *, resubscribe: bool = False,
               progress: Progress | None = None, email_column: str | None = None,
               name_column: str | None = None) -> ImportSummary:
    """Import one CSV file (see the module docstring for the rules).

    progress(done, total) is called every PROGRESS_EVERY rows and once at the end with
    done == total. Both count the file's lines after the header (so a quoted value with a
    line break in it counts twice); total comes from the checking pass.
    """
    path = Path(path)
    total, delimiter = check_file(path)
    summary = ImportSummary()
    next_report = 0
    with _open(path) as handle:
        rows = _rows(handle, delimiter, path)
        header = next(rows, (1, []))[1]
        try:
            fmt = formats.recognise(header, email_column=email_column, name_column=name_column)
        except FormatError as exc:
            raise StoreError(str(exc), file=path, line=1) from None
        summary.format = fmt.label
        source = f"import:{path.name}"
        batch: list[ImportRow] = []
        subscribers = store.subscribers
        with subscribers.importing():
            for line, cells in rows:
                if progress is not None and line - 1 >= next_report:
                    progress(line - 1, total)
                    next_report = line - 1 + PROGRESS_EVERY
                if not any(c.strip() for c in cells):
                    continue  # a blank line
                summary.rows += 1
                record = _record(fmt, cells, line, source, path.name, resubscribe, summary)
                if record is None:
                    continue
                batch.append(record)
                if len(batch) >= CHUNK:
                    _write(subscribers, batch, summary)
                    batch = []
            if batch:
                _write(subscribers, batch, summary)
    if progress is not None:
        progress(total, total)
    return summary


def _record(fmt: formats.Format, cells: list[str], line: int, source: str, file_name: str,
            resubscribe: bool, summary: ImportSummary) -> ImportRow | None:
    row: Row = fmt.map(cells)
    if row.skip:
        summary.skip(line, f"{row.skip}: skipped")
        return None
    raw = row.email.strip()
    if not raw:
        summary.skip(line, "email: skipped: empty email")
        return None
    try:
        email = stores.normalise_email(raw)
    except ValueError as exc:
        summary.skip(line, f"email: skipped: {raw!r}: {exc}")
        return None
    plain = fmt.key == "csv"
    stamp = stores.now() if plain else None
    if fmt.key == "newsletter":  # this tool's own export: its record exactly as written
        source, file_name = row.consent_source, row.source_file
    else:
        source = row.consent_source or (source if plain else f"{source} ({fmt.key})")
        file_name = row.source_file or file_name
    return ImportRow(
        line=line, email=email, status=row.status, name=row.name, has_name=fmt.has_name,
        status_reason=row.status_reason, created_at=row.created_at,
        unsubscribed_at=row.unsubscribed_at,
        consent_at=row.consent_at or stamp,
        consent_source=source,
        consent_ip=row.consent_ip, consent_form=row.consent_form,
        # a plain list is confirmed by whoever holds its consent record, now
        confirmed_at=row.confirmed_at or stamp,
        confirm_ip=row.confirm_ip, source_file=file_name,
        resubscribe=(resubscribe or row.resubscribe) and row.status == stores.ACTIVE,
    )


def _write(subscribers, batch: list[ImportRow], summary: ImportSummary) -> None:
    for record, outcome in zip(batch, subscribers.upsert_imported(batch), strict=True):
        if outcome.kind == REPEAT:
            summary.skip(record.line, f"email: skipped: {record.email} repeats line "
                                      f"{outcome.first_line}")
        elif outcome.kind == ADDED:
            summary.added += 1
            if outcome.status in (stores.UNSUBSCRIBED, stores.SUPPRESSED):
                _opted_out(summary, record)
            else:
                summary.added_by_status[outcome.status] += 1
        elif outcome.kind == OPTED_OUT:
            summary.updated += 1
            _opted_out(summary, record)
        elif outcome.kind == RESUBSCRIBED:
            summary.resubscribed += 1
        elif outcome.kind == KEPT_UNSUBSCRIBED:
            summary.kept_count += 1
            if len(summary.kept_unsubscribed) < MAX_REPORTED:
                summary.kept_unsubscribed.append(record.email)
        elif outcome.kind == UPDATED:
            summary.updated += 1
        elif outcome.kind == UNCHANGED:
            summary.unchanged += 1


def _opted_out(summary: ImportSummary, record: ImportRow) -> None:
    summary.opted_out[record.status] += 1
    # The first words of the reason ("cleaned in Mailchimp ..." -> cleaned) say why.
    reason = (record.status_reason or "").split(" in ")[0].split(" (")[0]
    word = reason if record.status == stores.SUPPRESSED and reason else ""
    summary.opted_out_why[f"{record.status} {word}".strip()] += 1


# -- exporting -----------------------------------------------------------------------------


def export_csv(store: Store, out: TextIO, *, status: str | None = None) -> int:
    """Write every subscriber (or those with `status`) with the whole consent record as CSV
    (header EXPORT_COLUMNS, which `import_csv` recognises); returns the number written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    n = 0
    for subscriber in store.subscribers.list(status):
        writer.writerow(formats.export_row(vars(subscriber)))
        n += 1
    return n

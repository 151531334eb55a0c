"""The `file` provider: one .eml per message in NEWSLETTER_OUTBOX, the default with no credentials.

Layout: `<outbox>/<slug>/<UTC timestamp>-<n>-<email>.eml`, for example
`outbox/2011-05/20110518T140501.123456Z-000001-ana@example.org.eml`. Each file is written to a
hidden temporary file in the same folder (`.<pid>-<random>.part`) and renamed into place, so a
reader (or a crash) never sees half a message; after a crash the next send removes the
temporary files of dead writers and counts a complete `.eml` of a recipient left in flight as
sent (`recover`). The bytes are exactly what the SMTP provider would send (CRLF line ends).
"""

from __future__ import annotations

import itertools
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

from newsletter.deliver.campaign import Campaign, Recipient, Result, Status
from newsletter.deliver.message import (
    AddressError,
    MessageFactory,
    check_batch,
    factory_for,
    message_id_of,
)
from newsletter.deliver.providers.base import NoWebhook, register
from newsletter.errors import ProviderError

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]+")


def safe_name(value: str, limit: int = 100) -> str:
    """A file-name-safe rendering of an address or slug (no path separators, no leading dot)."""
    return (_UNSAFE.sub("_", value).lstrip(".") or "_")[:limit]


@register
class FileProvider(NoWebhook):
    """Settings: NEWSLETTER_OUTBOX (default `outbox` beside newsletter.toml)."""

    name = "file"
    max_batch = 1000
    default_connections = 1
    selected_by = None  # the fallback when no other provider is configured
    per_message = True  # send_batch reports each Result as soon as its file is complete

    @classmethod
    def from_settings(cls, settings) -> FileProvider:
        return cls(settings.outbox)

    @classmethod
    def usable(cls, settings) -> str | None:
        return None

    @classmethod
    def describe(cls, settings) -> str:
        return f"into {_shown(settings.outbox)}/ (nothing leaves this computer)"

    def __init__(self, outbox: str | Path) -> None:
        self.outbox = Path(outbox)
        self._counter = itertools.count(1)
        self._factory: MessageFactory | None = None

    def _factory_for(self, campaign: Campaign) -> MessageFactory:
        self._factory = factory_for(self._factory, campaign)
        return self._factory

    def send_batch(self, campaign: Campaign, recipients: Sequence[Recipient],
                   on_result: Callable[[Result], None] | None = None) -> list[Result]:
        check_batch(campaign, recipients)
        factory = self._factory_for(campaign)
        folder = self.outbox / safe_name(campaign.slug)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProviderError(f"cannot create the outbox {folder}: {exc.strerror}",
                                provider=self.name) from None
        results: list[Result] = []
        if on_result is None:
            add = results.append
        else:
            def add(result: Result) -> None:  # reported before the next file is begun
                results.append(result)
                on_result(result)
        for recipient in recipients:
            try:
                data = factory.render(recipient)
            except AddressError as exc:
                add(Result(recipient.email, Status.REJECTED, error=str(exc)))
                continue
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            path = folder / f"{stamp}-{next(self._counter):06d}-{safe_name(recipient.email)}.eml"
            try:
                _write_atomically(path, data)
            except OSError as exc:
                add(Result(recipient.email, Status.FAILED,
                           error=f"cannot write {path}: {exc.strerror}"))
                continue
            add(Result(recipient.email, Status.SENT, message_id=message_id_of(data)))
        return results

    def recover(self, slug: str, emails: Sequence[str]) -> tuple[set[str], list[str], bool]:
        """After a crash: which of `emails` (in flight when a send died) have a complete
        `.eml` in this issue's folder, notes for people (the unfinished temporary files of
        dead processes, removed), and True: the outbox is conclusive, an address without a
        complete file was not sent."""
        folder = self.outbox / safe_name(slug)
        if not folder.is_dir():
            return set(), [], True
        wanted = {safe_name(e): e for e in emails}
        found: set[str] = set()
        removed = 0
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if name.endswith(".part"):
                    match = _TEMP.fullmatch(name)
                    if match and not _alive(int(match[1])):
                        try:
                            os.unlink(entry.path)
                            removed += 1
                        except FileNotFoundError:
                            pass
                    continue
                match = _NAME.fullmatch(name) if wanted else None
                if match and match[1] in wanted:
                    email = wanted[match[1]]
                    if _addressed_to(Path(entry.path), email):
                        found.add(email)
        notes = [f"removed {removed} unfinished temporary file(s) from {folder}: messages"
                 " being written when an earlier send stopped (their recipients were not"
                 " sent)"] if removed else []
        return found, notes, True

    def close(self) -> None:
        self._factory = None


def _shown(path: Path) -> str:
    """The outbox relative to the working folder when it is inside it (shorter to read)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


# `<stamp>-<n>-<safe address>.eml`, and the temporary `.<pid>-<random>.part` of a writer
_NAME = re.compile(r"\d{8}T\d{6}\.\d{6}Z-\d{6,}-(.+)\.eml")
_TEMP = re.compile(r"\.(\d+)-.*\.part")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _addressed_to(path: Path, email: str) -> bool:
    """The file's To header names `email` (two addresses can share a safe name)."""
    try:
        with path.open("rb") as f:
            head = f.read(16384).split(b"\r\n\r\n", 1)[0]
    except OSError:
        return False
    message = BytesParser(policy=policy.default).parsebytes(head + b"\r\n\r\n",
                                                            headersonly=True)
    try:
        return any(a.addr_spec.lower() == email.lower() for a in message["To"].addresses)
    except (AttributeError, TypeError, ValueError):
        return False


def _write_atomically(path: Path, data: bytes) -> None:
    # The writer's pid in the name: the next run removes only the files of dead writers.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{os.getpid()}-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

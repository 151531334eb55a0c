"""The `file` provider: one .eml per message in NEWSLETTER_OUTBOX, the default with no credentials.

Layout: `<outbox>/<slug>/<UTC timestamp>-<n>-<email>.eml`, for example
`outbox/2011-05/20110518T140501.123456Z-000001-ana@example.org.eml`. Each file is written to a
hidden temporary file in the same folder and renamed into place, so a reader (or a crash) never
sees half a message. The bytes are exactly what the SMTP provider would send (CRLF line ends).
"""

from __future__ import annotations

import itertools
import os
import re
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
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

    def send_batch(self, campaign: Campaign, recipients: Sequence[Recipient]) -> list[Result]:
        check_batch(campaign, recipients)
        factory = self._factory_for(campaign)
        folder = self.outbox / safe_name(campaign.slug)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProviderError(f"cannot create the outbox {folder}: {exc.strerror}",
                                provider=self.name) from None
        results = []
        for recipient in recipients:
            try:
                data = factory.render(recipient)
            except AddressError as exc:
                results.append(Result(recipient.email, Status.REJECTED, error=str(exc)))
                continue
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            path = folder / f"{stamp}-{next(self._counter):06d}-{safe_name(recipient.email)}.eml"
            try:
                _write_atomically(path, data)
            except OSError as exc:
                results.append(Result(recipient.email, Status.FAILED,
                                      error=f"cannot write {path}: {exc.strerror}"))
                continue
            results.append(Result(recipient.email, Status.SENT, message_id=message_id_of(data)))
        return results

    def close(self) -> None:
        self._factory = None


def _shown(path: Path) -> str:
    """The outbox relative to the working folder when it is inside it (shorter to read)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
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

"""The provider boundary: what every provider class says about itself, and the registry.

The order of a send is fixed by the sender (deliver/sender.py); a provider only maps a
Campaign and its Recipients onto its transport and reports one Result per recipient. Besides
sending, a provider class owns everything else that is specific to it: how it is configured
(`from_settings`, `usable`), how it is described to a user (`describe`), how many connections
a full send uses by default, and, if it has one, its webhook (`webhook`).

A provider module registers its class with `@register`; `providers/__init__.py` imports the
modules, so adding a provider is one module plus one import line there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar, Protocol

from newsletter.deliver.campaign import Campaign, Recipient, Result
from newsletter.deliver.events import ProviderEvent
from newsletter.errors import ProviderError


class RetryableError(ProviderError):
    """The batch certainly did not arrive (429, 5xx, connection refused): safe to send again.

    `retry_after` is the provider's requested wait in seconds, when it gave one.
    """

    def __init__(
        self, message: str, *, provider: str, status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, status=status)
        self.retry_after = retry_after


class WebhookRefused(Exception):
    """A webhook request that is not accepted: `status` is the HTTP status to answer with
    (400 malformed, 403 unsigned or badly signed, 413 too large), `message` a short reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Webhook(Protocol):
    """A provider's event webhook, configured once when `serve` starts."""

    # Why every request would be refused (e.g. no verification key), or None when ready.
    problem: str | None

    def parse(self, headers: Mapping[str, str], body: bytes, now: float
              ) -> tuple[list[ProviderEvent], int]:
        """(the events, how many items of the body were not events we can read).
        Raises WebhookRefused when the request as a whole is not accepted."""
        ...


class Provider(Protocol):
    name: ClassVar[str]  # the registry name, the value of NEWSLETTER_PROVIDER
    max_batch: int  # most recipients one send_batch call takes
    default_connections: ClassVar[int]  # parallel connections of a full send by default

    @classmethod
    def from_settings(cls, settings) -> Provider:
        """Ready to send (nothing connects yet); ConfigError names what is missing or wrong."""
        ...

    @classmethod
    def usable(cls, settings) -> str | None:
        """What is missing or wrong in the settings, as one sentence, or None. Cheap: never
        connects, never raises for a configuration problem."""
        ...

    @classmethod
    def describe(cls, settings) -> str:
        """Where mail goes, for people: "through SendGrid", "into outbox/". Never a secret."""
        ...

    @classmethod
    def webhook(cls, settings) -> Webhook | None:
        """The event webhook served at /webhooks/<name>, or None when it has none.
        ConfigError for a setting that is present but wrong."""
        ...

    def send_batch(self, campaign: Campaign, recipients: Sequence[Recipient]) -> list[Result]:
        """One Result per recipient, in order.

        Raises ProviderAuthError (stop everything), RetryableError (nothing was accepted;
        the caller may retry), or ProviderError (configuration or connection problem before
        anything was sent). A failure after the request may have been accepted is reported as
        Status.UNKNOWN results, never raised.

        Also (providers/file, smtp, sendgrid): ValueError, before anything is sent, for a
        caller bug (sendgrid: more than max_batch recipients; a subscriber send whose
        recipient lacks an unsubscribe_url or has one that is not a plain ASCII URL).
        Once any message of the batch may have been accepted, nothing is raised: recipients
        not attempted are FAILED ("not attempted: ..."). FAILED always means certainly not
        accepted (safe to send again); REJECTED means refused for that address (5xx, or an
        address that cannot be written without SMTPUTF8).
        """
        ...

    def close(self) -> None: ...


class PerMessageProvider(Provider, Protocol):
    """A provider that sends a batch one message at a time, in order (`per_message = True`):
    `send_batch(campaign, recipients, on_result=callback)` calls `callback(result)` for each
    recipient as soon as its outcome is known and before the next message starts, so the
    sender can record it at once and a crash leaves at most the message on the wire unknown.

    Optionally `recover(slug, emails) -> (found, notes, conclusive)`: which of `emails` (in
    flight when a send died) the provider can show were sent, notes for people (e.g. leftover
    files removed), and whether an address not found certainly was not sent."""

    per_message: ClassVar[bool]

    def send_batch(self, campaign: Campaign, recipients: Sequence[Recipient],
                   on_result: Callable[[Result], None] | None = None) -> list[Result]: ...


REGISTRY: dict[str, type[Provider]] = {}


def register(cls: type) -> type:
    """Class decorator: make a provider class available under its `name`."""
    REGISTRY[cls.name] = cls
    return cls


class NoWebhook:
    """Mixin for providers without a webhook."""

    @classmethod
    def webhook(cls, settings) -> Webhook | None:
        return None

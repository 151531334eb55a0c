"""SendGrid's Event Webhook: verify the signature, turn SendGrid's events into ProviderEvents.

Settings: `SENDGRID_WEBHOOK_PUBLIC_KEY`, the verification key from SendGrid's "Event Webhook"
settings page (base64 DER; a PEM block is accepted too). Without it every post is refused.

A post is accepted only when `X-Twilio-Email-Event-Webhook-Signature` is a valid ECDSA
(P-256, SHA-256) signature of the timestamp header followed by the raw body, and the
timestamp is within MAX_AGE seconds of now (older or that far in the future is a replay).

Event names (anymail's vocabulary): processed -> queued, delivered, deferred, bounce ->
bounced (type "blocked": a temporary refusal, not a reason to suppress), dropped -> rejected,
open -> opened, click -> clicked, spamreport -> complained, unsubscribe and group_unsubscribe ->
unsubscribed; anything else -> unknown (kept, never acted on). The issue comes from the
`issue` custom arg the provider put on every request (else a category that looks like a slug);
events of test sends and transactional mail belong to no issue.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from newsletter.deliver.events import EventKind, ProviderEvent
from newsletter.deliver.providers.base import WebhookRefused
from newsletter.errors import ConfigError
from newsletter.store import normalise_email

NAME = "sendgrid"
PUBLIC_KEY_ENV = "SENDGRID_WEBHOOK_PUBLIC_KEY"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_AGE = 600  # seconds

KINDS = {
    "processed": EventKind.QUEUED,
    "delivered": EventKind.DELIVERED,
    "deferred": EventKind.DEFERRED,
    "bounce": EventKind.BOUNCED,
    "dropped": EventKind.REJECTED,
    "open": EventKind.OPENED,
    "click": EventKind.CLICKED,
    "spamreport": EventKind.COMPLAINED,
    "unsubscribe": EventKind.UNSUBSCRIBED,
    "group_unsubscribe": EventKind.UNSUBSCRIBED,
}
_MAX_FIELD = 1000  # longest text kept from an event field (reasons can be long SMTP replies)
_SLUG = re.compile(r"^\d{4}-\d{2}")


def load_public_key(value: str | None) -> ec.EllipticCurvePublicKey | None:
    """The verification key from its base64 DER text (or a PEM block); None when not set."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.startswith("-----BEGIN"):
        text = "".join(line for line in text.splitlines() if not line.startswith("-----"))
    try:
        key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, TypeError, binascii.Error):
        key = None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError(
            "not a valid ECDSA public key (copy the verification key from SendGrid's "
            "Event Webhook settings)", field=PUBLIC_KEY_ENV,
        )
    return key


class SendGridWebhook:
    def __init__(self, public_key: ec.EllipticCurvePublicKey | None) -> None:
        self.public_key = public_key
        self.problem = None if public_key else (
            f"{PUBLIC_KEY_ENV} is not set: /webhooks/{NAME} refuses every request")

    @classmethod
    def from_settings(cls, settings) -> SendGridWebhook:
        return cls(load_public_key(settings.getenv(PUBLIC_KEY_ENV)))

    def parse(self, headers: Mapping[str, str], body: bytes, now: float
              ) -> tuple[list[ProviderEvent], int]:
        if self.public_key is None:
            raise WebhookRefused(403, "webhook verification is not configured")
        signature = headers.get(SIGNATURE_HEADER, "")
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        if not signature or not timestamp:
            raise WebhookRefused(403, "unsigned")
        try:
            age = now - int(timestamp)
        except ValueError:
            raise WebhookRefused(400, "bad timestamp") from None
        if abs(age) > MAX_AGE:
            raise WebhookRefused(403, "stale timestamp")
        if not self.verify(body, signature, timestamp):
            raise WebhookRefused(403, "bad signature")
        try:
            items = json.loads(body)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise WebhookRefused(400, "body is not JSON") from None
        if not isinstance(items, list):
            raise WebhookRefused(400, "expected a JSON array of events")
        events = [e for e in map(parse_event, items) if e is not None]
        return events, len(items) - len(events)

    def verify(self, body: bytes, signature: str, timestamp: str) -> bool:
        """The signature check of sendgrid's EventWebhook, on the raw bytes (it decodes
        and re-encodes them, which fails on a body that is not UTF-8)."""
        assert self.public_key is not None
        try:
            raw = base64.b64decode(signature, validate=True)
            self.public_key.verify(raw, timestamp.encode("ascii") + body,
                                   ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
            return False
        return True


def parse_event(event: Any) -> ProviderEvent | None:
    """One event of a post, or None when it lacks an id, a name or an address."""
    if not isinstance(event, Mapping):
        return None
    event_id, name, email = event.get("sg_event_id"), event.get("event"), event.get("email")
    if not (isinstance(event_id, str) and event_id and isinstance(name, str)
            and isinstance(email, str) and "@" in email):
        return None
    try:
        email = normalise_email(email[:_MAX_FIELD])
    except ValueError:
        return None
    stamp = event.get("timestamp")
    when = None
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        try:
            when = dt.datetime.fromtimestamp(stamp, dt.UTC)
        except (OverflowError, OSError, ValueError):
            when = None
    url = event.get("url")
    return ProviderEvent(
        provider=NAME,
        event_id=event_id[:200],
        kind=KINDS.get(name, EventKind.UNKNOWN),
        email=email,
        issue=event_issue(event),
        timestamp=when,
        reason=_text(event.get("reason") or event.get("response") or event.get("type")),
        url=_text(url) if isinstance(url, str) else None,
        provider_type=name[:50],
        temporary=name == "bounce" and event.get("type") == "blocked",
    )


def event_issue(event: Mapping[str, Any]) -> str | None:
    """The issue slug an event belongs to: custom_args `issue` (SendGrid puts custom_args at
    the top level of each event; a nested `custom_args` is accepted too), else the category
    that looks like a slug, else the first category. None for test sends and transactional
    mail (custom args `test` = "1" or `transactional`)."""
    nested = event.get("custom_args")
    args: Mapping[str, Any] = nested if isinstance(nested, Mapping) else {}
    if (event.get("test") or args.get("test")) == "1" or \
            event.get("transactional") or args.get("transactional"):
        return None
    issue = event.get("issue") or args.get("issue")
    if isinstance(issue, str) and issue:
        return issue[:200]
    categories = event.get("category")
    if isinstance(categories, str):
        categories = [categories]
    if isinstance(categories, list):
        names = [c for c in categories if isinstance(c, str) and c]
        for c in names:
            if _SLUG.match(c):
                return c[:200]
        if names:
            return names[0][:200]
    return None


def _text(value: Any, limit: int = _MAX_FIELD) -> str | None:
    if value is None:
        return None
    return (value if isinstance(value, str) else str(value))[:limit]

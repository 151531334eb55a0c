"""Signed tokens for unsubscribe and confirmation links.

A token is `base64url(email) "." base64url(HMAC-SHA256(secret, purpose ":" list_id ":" email))`.
It needs no database look-up to verify, names exactly one address on one list for one purpose,
and is compared in constant time. During a key rotation the previous secret is still accepted.
The unsubscribe URL is `<links.public>/unsubscribe?t=<token>`; the confirmation URL is
`<links.public>/confirm?t=<token>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

UNSUBSCRIBE = "unsubscribe"
CONFIRM = "confirm"
MAX_TOKEN_LENGTH = 1024


class BadToken(ValueError):
    """The token is malformed, altered, or signed with a key we do not hold."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, list_id: str, email: str) -> bytes:
    message = f"{purpose}:{list_id}:{email}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def make_token(email: str, *, purpose: str, list_id: str, secret: str) -> str:
    return f"{_b64(email.encode())}.{_b64(_mac(secret, purpose, list_id, email))}"


def read_token(token: str, *, purpose: str, list_id: str, secrets: Iterable[str]) -> str:
    """The address the token was made for, or BadToken."""
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise BadToken("malformed token")
    head, sig = token.split(".")
    try:
        email = _unb64(head).decode("utf-8")
        given = _unb64(sig)
    except (ValueError, UnicodeDecodeError):
        raise BadToken("malformed token") from None
    ok = False
    for secret in secrets:
        # No early exit: every key is tried, so timing does not reveal which one matched.
        ok |= hmac.compare_digest(given, _mac(secret, purpose, list_id, email))
    if not ok or "@" not in email:
        raise BadToken("token signature does not match")
    return email


def link(base_url: str, path: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/{path}?t={token}"


def unsubscribe_url(settings, email: str) -> str:
    """The per-recipient unsubscribe link (settings: newsletter.config.Settings)."""
    base = settings.public_url or "http://127.0.0.1:8025"
    token = make_token(email, purpose=UNSUBSCRIBE, list_id=settings.list_id,
                       secret=settings.secret)
    return link(base, "unsubscribe", token)


def confirm_url(settings, email: str) -> str:
    token = make_token(email, purpose=CONFIRM, list_id=settings.list_id, secret=settings.secret)
    return link(settings.public_url or "http://127.0.0.1:8025", "confirm", token)

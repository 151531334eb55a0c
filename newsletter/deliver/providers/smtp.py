"""The `smtp` provider: the standard library's smtplib, one connection reused across batches.

Settings (environment or .env):

- `SMTP_URL`: `smtp://user:password@host:port` (STARTTLS whenever the server offers it) or
  `smtps://user:password@host:port` (TLS from the first byte). User and password are URL-decoded
  (`%40` for `@`). Without credentials no AUTH is tried. Default port: 465 for smtps; for smtp
  587 with credentials, else 25.
- `SMTP_TIMEOUT`: seconds to wait for the server at each step (default 30).
- `SMTP_CA_FILE`: PEM file of the CA (or self-signed certificate) to trust instead of the
  system store.
- `SMTP_TLS_VERIFY`: `0` accepts any certificate (test servers only).
- `SMTP_HELO`: the name given in EHLO (default: this machine's host name).
- `SMTP_ALLOW_PLAIN_AUTH`: `1` sends the password over an unencrypted connection to a
  non-loopback server (refused by default).

Outcomes per recipient: the server's 2xx after the data -> SENT; 5xx to RCPT or after the data ->
REJECTED; 4xx -> FAILED (temporary, certainly not accepted); the connection lost or a timeout
after the message data was sent -> UNKNOWN. A connection lost *before* the data (a reused
connection the server closed while idle, a 421) is reconnected once and the message retried.
Nothing reached the server yet and it cannot be reached -> RetryableError; 535 -> ProviderAuthError.
Once a batch has delivered anything, send_batch never raises: the rest of the batch is reported
FAILED ("not attempted: ...") so no delivered message is forgotten.
"""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from newsletter.config import env_seconds
from newsletter.deliver.campaign import Campaign, Recipient, Result, Status
from newsletter.deliver.message import (
    AddressError,
    MessageFactory,
    ascii_address,
    check_batch,
    factory_for,
    message_id_of,
)
from newsletter.deliver.providers.base import NoWebhook, RetryableError, register
from newsletter.errors import ConfigError, ProviderAuthError, ProviderError

NAME = "smtp"
_EXPECTED = "expected smtp://user:password@host:port or smtps://user:password@host:port"
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class SmtpConfig:
    scheme: str  # "smtp" or "smtps"
    host: str
    port: int
    user: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never show the password, not even in a traceback
        return f"SmtpConfig({self.scheme}://{self.user or ''}@{self.host}:{self.port})"


def parse_smtp_url(url: str) -> SmtpConfig:
    """ConfigError naming SMTP_URL (and never echoing the password) when malformed."""

    def bad(reason: str) -> ConfigError:
        return ConfigError(f"malformed: {reason} ({_EXPECTED})", field="SMTP_URL")

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise bad("the port is not a number from 0 to 65535") from None
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise bad(f"unknown scheme {scheme + '://' if scheme else '(none)'}")
    if not parts.hostname:
        raise bad("no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise bad("unexpected path or query after host:port")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not user:
        raise bad("a password without a user")
    if port is None:
        port = 465 if scheme == "smtps" else (587 if user else 25)
    return SmtpConfig(scheme, parts.hostname, port, user, password)


def tls_context(getenv) -> ssl.SSLContext:
    """Verified TLS by default; SMTP_CA_FILE trusts a given CA; SMTP_TLS_VERIFY=0 trusts any."""
    cafile = getenv("SMTP_CA_FILE")
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot read the CA file {cafile}: {exc}",
                          field="SMTP_CA_FILE") from None
    if (getenv("SMTP_TLS_VERIFY") or "1").strip().lower() in ("0", "false", "no", "off"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Reconnect(Exception):
    """The connection was lost (or closed with 421) before the message data was sent."""


@register
class SmtpProvider(NoWebhook):
    name = NAME
    max_batch = 1000
    # Each message is a round trip to the server: a few connections in parallel gain most.
    default_connections = 4
    selected_by = "SMTP_URL"  # chosen without NEWSLETTER_PROVIDER when this is set
    per_message = True  # send_batch reports each Result as soon as the server answered

    def __init__(
        self,
        config: SmtpConfig,
        *,
        timeout: float = 30.0,
        context: ssl.SSLContext | None = None,
        helo: str | None = None,
        allow_plain_auth: bool = False,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.context = context or ssl.create_default_context()
        self.helo = helo or socket.gethostname() or "localhost"
        self.allow_plain_auth = allow_plain_auth
        self._conn: smtplib.SMTP | None = None
        self._factory: MessageFactory | None = None
        self.connections_opened = 0  # for tests and benchmarks

    @classmethod
    def from_settings(cls, settings) -> SmtpProvider:
        getenv = settings.getenv
        url = getenv("SMTP_URL")
        if not url:
            raise ConfigError(
                "not set: put smtp://user:password@host:port (or smtps://...) in SMTP_URL",
                field="SMTP_URL",
            )
        return cls(
            parse_smtp_url(url),
            timeout=env_seconds(getenv, "SMTP_TIMEOUT", 30),
            context=tls_context(getenv),
            helo=getenv("SMTP_HELO"),
            allow_plain_auth=(getenv("SMTP_ALLOW_PLAIN_AUTH") or "") in ("1", "true", "yes"),
        )

    @classmethod
    def usable(cls, settings) -> str | None:
        try:
            cls.from_settings(settings)  # parses and reads files only: nothing connects
        except ConfigError as exc:
            return str(exc)
        return None

    @classmethod
    def describe(cls, settings) -> str:
        try:
            config = parse_smtp_url(settings.getenv("SMTP_URL") or "")
        except ConfigError:
            return "through the SMTP server of SMTP_URL"
        return f"through the SMTP server {config.host}:{config.port}"  # never user or password

    # -- connection ----------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        conn: smtplib.SMTP | None = None
        try:
            if cfg.scheme == "smtps":
                conn = smtplib.SMTP_SSL(cfg.host, cfg.port, local_hostname=self.helo,
                                        timeout=self.timeout, context=self.context)
            else:
                conn = smtplib.SMTP(cfg.host, cfg.port, local_hostname=self.helo,
                                    timeout=self.timeout)
            conn.ehlo()
            secure = cfg.scheme == "smtps"
            if not secure and conn.has_extn("starttls"):
                conn.starttls(context=self.context)
                conn.ehlo()
                secure = True
            if cfg.user:
                if not secure and cfg.host not in _LOOPBACK and not self.allow_plain_auth:
                    raise ProviderError(
                        f"{self._where()} offers no STARTTLS: refusing to send the password "
                        "unencrypted (use smtps://, or set SMTP_ALLOW_PLAIN_AUTH=1)",
                        provider=NAME,
                    )
                _login(conn, cfg.user, cfg.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            _quietly_close(conn)
            text = _reply_text(exc.smtp_error)
            if 400 <= exc.smtp_code < 500:
                raise RetryableError(f"{self._where()} login failed for now: {exc.smtp_code} "
                                     f"{text}", provider=NAME, status=exc.smtp_code) from None
            raise ProviderAuthError(
                f"{self._where()} refused the login of user {cfg.user!r} ({exc.smtp_code} {text}); "
                "check the user and password in SMTP_URL", provider=NAME, status=exc.smtp_code,
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            _quietly_close(conn)
            why = str(exc) if "non-ASCII" in str(exc) else "the server does not offer AUTH"
            raise ProviderError(f"{self._where()}: {why}: remove the user and password from "
                                "SMTP_URL or use another port", provider=NAME) from None
        except ssl.SSLCertVerificationError as exc:
            _quietly_close(conn)
            raise ProviderError(
                f"{self._where()}: TLS certificate not trusted ({exc.verify_message}); "
                "set SMTP_CA_FILE, or SMTP_TLS_VERIFY=0 for a test server", provider=NAME,
            ) from None
        except ssl.SSLError as exc:
            _quietly_close(conn)
            raise ProviderError(f"{self._where()}: TLS handshake failed ({exc.reason}); is the "
                                "scheme right (smtps:// vs smtp://)?", provider=NAME) from None
        except ProviderError:
            _quietly_close(conn)
            raise
        except (OSError, smtplib.SMTPException) as exc:
            _quietly_close(conn)
            raise RetryableError(f"cannot connect to {self._where()}: {exc}",
                                 provider=NAME) from None
        self.connections_opened += 1
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        _quietly_close(conn)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                _quietly_close(conn)
        self._factory = None

    # -- sending -------------------------------------------------------------------------
    def send_batch(self, campaign: Campaign, recipients: Sequence[Recipient],
                   on_result: Callable[[Result], None] | None = None) -> list[Result]:
        check_batch(campaign, recipients)
        self._factory = factory = factory_for(self._factory, campaign)
        sender = factory.from_address
        results: list[Result] = []
        if on_result is None:
            add = results.append
        else:
            def add(result: Result) -> None:  # reported before the next message starts
                results.append(result)
                on_result(result)

        def delivered() -> bool:  # may anything of this batch have reached the server?
            return any(r.status in (Status.SENT, Status.UNKNOWN) for r in results)

        for i, recipient in enumerate(recipients):
            try:
                data = factory.render(recipient)
                rcpt = ascii_address(recipient.email)
            except AddressError as exc:
                add(Result(recipient.email, Status.REJECTED, error=str(exc)))
                continue
            try:
                add(self._send_one(sender, rcpt, recipient.email, data))
            except ProviderError as exc:
                # Nothing of this batch reached the server: let the caller retry or stop.
                if not delivered():
                    raise
                note = f"not attempted: {exc.message}"
                results.extend(Result(r.email, Status.FAILED, error=note) for r in recipients[i:])
                break
        return results

    def _send_one(self, sender: str, rcpt: str, email: str, data: bytes) -> Result:
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = self._connect()
            try:
                return self._transaction(self._conn, sender, rcpt, email, data)
            except _Reconnect as exc:
                self._drop()
                if attempt == 2:
                    raise RetryableError(f"{self._where()} closed the connection: {exc}",
                                         provider=NAME) from None
        raise AssertionError("unreachable")

    def _transaction(
        self, conn: smtplib.SMTP, sender: str, rcpt: str, email: str, data: bytes
    ) -> Result:
        try:
            code, reply = conn.mail(sender)
            if code == 421:
                raise _Reconnect(f"{code} {_reply_text(reply)}")
            if code != 250:
                self._reset(conn)
                kind = RetryableError if 400 <= code < 500 else ProviderError
                raise kind(f"{self._where()} refused the sender {sender}: {code} "
                           f"{_reply_text(reply)}", provider=NAME, status=code)
            code, reply = conn.rcpt(rcpt)
            if code == 421:
                raise _Reconnect(f"{code} {_reply_text(reply)}")
            if code not in (250, 251):
                self._reset(conn)
                return _refused(email, code, reply)
            code, reply = conn.docmd("DATA")
            if code == 421:
                raise _Reconnect(f"{code} {_reply_text(reply)}")
            if code != 354:
                self._reset(conn)
                return Result(email, Status.FAILED, error=f"DATA refused: {code} "
                              f"{_reply_text(reply)}")
        except smtplib.SMTPServerDisconnected as exc:
            raise _Reconnect(str(exc) or "disconnected") from None
        # From here on the server may have the message: a lost connection means "unknown".
        # MessageFactory output ends with CRLF and has no line starting with ".", so no
        # dot-stuffing is needed (smtplib.data would scan the whole message again).
        message_id = message_id_of(data)
        try:
            conn.send(data + b".\r\n")
            code, reply = conn.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            return Result(email, Status.UNKNOWN, message_id=message_id,
                          error=f"connection lost after the message was sent: {exc}")
        if code == 250:
            return Result(email, Status.SENT, message_id=message_id)
        if code == 421:
            self._drop()
        return _refused(email, code, reply, message_id=message_id)

    def _reset(self, conn: smtplib.SMTP) -> None:
        try:
            conn.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()


def _login(conn: smtplib.SMTP, user: str, password: str) -> None:
    """smtplib.login, except that non-ASCII credentials go as UTF-8 AUTH PLAIN (RFC 4616):
    smtplib encodes every credential as ASCII and would crash on `é`."""
    if user.isascii() and password.isascii():
        conn.login(user, password)
        return
    if "plain" not in conn.esmtp_features.get("auth", "").lower().split():
        raise smtplib.SMTPNotSupportedError("non-ASCII credentials need AUTH PLAIN")
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    code, reply = conn.docmd("AUTH", "PLAIN " + token)
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())


def _refused(email: str, code: int, reply, message_id: str | None = None) -> Result:
    """5xx: this recipient or message was refused for good; 4xx: a temporary failure."""
    status = Status.REJECTED if code >= 500 else Status.FAILED
    return Result(email, status, message_id=message_id, error=f"{code} {_reply_text(reply)}")


def _quietly_close(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass

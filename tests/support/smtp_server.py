"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd), recording every message it accepts.

    with SmtpPeer() as peer:                       # plain
    with SmtpPeer(auth=("ana", "s3cret")) as peer: # AUTH required (no TLS needed on loopback)
    with SmtpPeer(tls="starttls", cert=c) as peer: # STARTTLS required, self-signed `c`
    with SmtpPeer(tls="smtps", cert=c) as peer:    # implicit TLS
    peer.url()  -> "smtp://127.0.0.1:PORT" (with user:password when auth is set)
    peer.messages -> [Received(mail_from, rcpt_tos, data: bytes, login)]

Misbehaviour on request: `drop_after=N` closes the connection right after answering the N-th
message (an idle drop, the client must reconnect); `drop_in_data=N` closes it after receiving the
N-th message's data without answering (the client cannot know: unknown); `gone_after=N`
answers the N-th message, hangs up and stops listening (reconnects are refused);
`reject={addr: "550 ..."}` answers RCPT for those addresses with that reply.
It stops by itself when the `with` ends.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # exactly as received (after SMTP dot-unstuffing)
    login: str | None = None


@dataclass
class _Handler:
    drop_after: int | None = None
    drop_in_data: int | None = None
    reject: dict[str, str] = field(default_factory=dict)
    gone_after: int | None = None
    controller: Controller | None = None
    messages: list[Received] = field(default_factory=list)
    dropped: list[Received] = field(default_factory=list)
    count: int = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject:
            return self.reject[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        auth = getattr(session, "auth_data", None)
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        got = Received(envelope.mail_from, list(envelope.rcpt_tos),
                       envelope.original_content, login)
        if self.drop_in_data and self.count == self.drop_in_data:
            self.dropped.append(got)
            server.transport.abort()  # no reply at all: the client cannot know
            return "451 not reached"
        self.messages.append(got)
        if self.gone_after and self.count == self.gone_after:
            # Answer, hang up, and stop listening: every reconnect is refused.
            loop = asyncio.get_running_loop()
            loop.call_soon(server.transport.close)
            loop.call_soon(self.controller.server.close)
        if self.drop_after and self.count == self.drop_after:
            # Answer first, then hang up, as a server with a per-connection limit does.
            asyncio.get_running_loop().call_soon(server.transport.close)
        return "250 2.0.0 OK queued"


class _Auth:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


class SmtpPeer:
    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        tls: str | None = None,  # None, "starttls" or "smtps"
        cert: tuple[Path, Path] | None = None,
        drop_after: int | None = None,
        drop_in_data: int | None = None,
        reject: dict[str, str] | None = None,
        gone_after: int | None = None,
    ) -> None:
        self.auth = auth
        self.tls = tls
        self.handler = _Handler(drop_after, drop_in_data, dict(reject or {}), gone_after)
        self.port = free_port()
        kwargs: dict = {}
        context = None
        if tls:
            if cert is None:
                raise ValueError("tls needs cert=(cert.pem, key.pem)")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        if tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        if auth:
            # aiosmtpd only counts STARTTLS as TLS; on loopback AUTH in clear text is fine.
            kwargs.update(authenticator=_Auth(*auth), auth_required=True,
                          auth_require_tls=tls == "starttls")
        with warnings.catch_warnings():  # "AUTH without TLS" is intended here
            warnings.simplefilter("ignore")
            self.controller = self._controller(context, kwargs)
        self.handler.controller = self.controller

    def _controller(self, context, kwargs) -> Controller:
        return Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=context if self.tls == "smtps" else None,
            server_hostname="localhost",
            **kwargs,
        )

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    @property
    def dropped(self) -> list[Received]:
        return self.handler.dropped

    def url(self, user: str | None = None, password: str | None = None) -> str:
        from urllib.parse import quote

        scheme = "smtps" if self.tls == "smtps" else "smtp"
        if user is None and self.auth:
            user, password = self.auth
        cred = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
        return f"{scheme}://{cred}127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpPeer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

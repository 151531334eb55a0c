"""Helpers for the serve tests and bench: the real waitress server in a thread, plain HTTP
requests with http.client, and SendGrid-style webhook signatures (ECDSA P-256)."""

from __future__ import annotations

import base64
import http.client
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from waitress import wasyncore


@contextmanager
def running(app, threads: int = 8, trusted_proxy: str | None = None) -> Iterator[str]:
    """Serve `app` with waitress on 127.0.0.1 (a free port); yields the base URL."""
    from newsletter.web.app import make_server

    server = make_server(app, host="127.0.0.1", port=0, threads=threads,
                         trusted_proxy=trusted_proxy)
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        stop(server, thread)


def stop(server, thread: threading.Thread, timeout: float = 10) -> None:
    """Close every socket from inside waitress's own loop thread (closing them from here races
    with its select() and ends in EBADF), then stop its worker threads, then the trigger.

    The trigger (a pipe) is closed only here, after the loop ended. `pull_trigger` queues the
    thunk and then writes to the pipe; when the loop is already awake (a worker pulled it after
    a response), it can run the thunk before that write. Had the thunk closed the pipe (as
    `server.close()` does), the write hit a closed descriptor (EBADF: an intermittent failure
    of whichever test stopped a server) or, worse, one another thread had just reopened."""

    def close_all() -> None:
        for dispatcher in list(server._map.values()):
            if dispatcher is not server and dispatcher is not server.trigger:
                dispatcher.close()
        wasyncore.dispatcher.close(server)  # the listening socket only
        server.trigger.del_channel()  # out of the loop's map, which is now empty: the loop ends

    server.trigger.pull_trigger(close_all)
    thread.join(timeout)
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)
    assert not thread.is_alive(), "waitress did not stop"
    server.trigger.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str


def call(base: str, method: str, path: str, body: bytes | str | None = None,
         headers: dict[str, str] | None = None, timeout: float = 10) -> Reply:
    """One request on a fresh connection (http.client: nothing added behind our back)."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        if isinstance(body, str):
            body = body.encode()
        headers = dict(headers or {})
        if body is not None and method == "POST":
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()},
                     data.decode("utf-8", "replace"))
    finally:
        conn.close()


def form(**fields: str) -> str:
    return urllib.parse.urlencode(fields)


# -- SendGrid signed webhooks ---------------------------------------------------------------

def keypair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A P-256 key pair; the public half as SendGrid shows it (base64 DER, no PEM armour)."""
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


def sign(private: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """What SendGrid sends in X-Twilio-Email-Event-Webhook-Signature: base64 of the DER ECDSA
    signature (SHA-256) over the timestamp followed by the raw body."""
    signature = private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


def signed_headers(private, body: bytes, timestamp: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": sign(private, timestamp, body),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }

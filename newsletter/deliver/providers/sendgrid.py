"""The `sendgrid` provider: v3 `POST /mail/send` through the `sendgrid` package.

Settings: `SENDGRID_API_KEY` (required), `SENDGRID_API_HOST` (default https://api.sendgrid.com,
no `/v3`; tests point it at a local endpoint) and `SENDGRID_TIMEOUT` (seconds, default 30: the
client has none of its own).

One request per batch of at most 1,000 recipients, one personalization per recipient (nobody
sees another address). The issue is sent once as content; each personalization carries only its
unsubscribe URL as `substitutions` (the text part gets the URL, the HTML part the HTML-escaped
URL, under two keys) and, for subscriber sends, its own `List-Unsubscribe` and
`List-Unsubscribe-Post` headers. `categories: [slug]` and `custom_args: {"issue": slug}` let
Event Webhook posts be matched back to the issue. The body is written here as JSON text (one
fragment per personalization) and posted pre-encoded through the package's client, with
`Content-Type: application/json` (see _JSON_TYPE); `build_body` gives it back as a dict.

Outcomes: 2xx -> every recipient SENT with the request's X-Message-Id; 429, 408 and 5xx ->
RetryableError (retry_after from Retry-After or X-RateLimit-Reset); 401/403 ->
ProviderAuthError; any other 4xx -> every recipient FAILED with SendGrid's error text; a refused
or failed connection before the request was sent -> RetryableError; no answer after the request
was sent (timeout, connection dropped) -> every recipient UNKNOWN (SendGrid has no idempotency
key: it may have accepted them). The API key never appears in an error or a log line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from html import escape
from json.encoder import encode_basestring_ascii as _encode_basestring_ascii
from urllib.parse import urlsplit

from newsletter.compose.render import UNSUBSCRIBE_PLACEHOLDER
from newsletter.config import env_seconds
from newsletter.deliver.message import (
    MAX_LINE,
    ONE_CLICK,
    AddressError,
    ascii_address,
    check_batch,
    check_url,
    list_id,
    one_line,
)
from newsletter.deliver.providers.base import Campaign, Recipient, Result, RetryableError, Status
from newsletter.errors import ConfigError, ProviderAuthError, ProviderError

NAME = "sendgrid"
DEFAULT_HOST = "https://api.sendgrid.com"
TEXT_KEY = UNSUBSCRIBE_PLACEHOLDER  # "{{unsubscribe_url}}" in the text part
HTML_KEY = "{{unsubscribe_url_html}}"  # the same URL, HTML-escaped, in the HTML part
MAX_RECIPIENTS = 1000  # per request (personalizations and to+cc+bcc in total)

# python_http_client logs request headers (the Authorization: Bearer key) at DEBUG.
logging.getLogger("python_http_client").setLevel(logging.INFO)


class SendGridProvider:
    name = NAME
    max_batch = MAX_RECIPIENTS

    def __init__(self, api_key: str, *, host: str = DEFAULT_HOST, timeout: float = 30.0) -> None:
        if not api_key:
            raise ConfigError("not set: put your SendGrid API key in SENDGRID_API_KEY",
                              field="SENDGRID_API_KEY")
        self._key = api_key
        self.host = host.rstrip("/")
        self.timeout = timeout
        self._client = None
        self._content: tuple[Campaign, dict] | None = None
        self._head_json: tuple[Campaign, str] | None = None
        self._ready: tuple | None = None  # (campaign, recipients, body) from prepare()
        self.requests_made = 0
        _bypass_proxy_for_loopback(self.host)

    def __repr__(self) -> str:  # never the key
        return f"SendGridProvider(host={self.host!r})"

    @classmethod
    def from_settings(cls, settings) -> SendGridProvider:
        getenv = settings.getenv
        host = getenv("SENDGRID_API_HOST") or DEFAULT_HOST
        if urlsplit(host).scheme not in ("http", "https") or not urlsplit(host).hostname:
            raise ConfigError("must be an http(s) URL such as https://api.sendgrid.com",
                              field="SENDGRID_API_HOST")
        timeout = env_seconds(getenv, "SENDGRID_TIMEOUT", 30)
        return cls(getenv("SENDGRID_API_KEY") or "", host=host, timeout=timeout)

    @property
    def client(self):
        if self._client is None:
            from sendgrid import SendGridAPIClient  # lazily: `build` never pays for it

            self._client = SendGridAPIClient(self._key, host=self.host)
        return self._client

    # -- the request body ------------------------------------------------------------------
    def _message(self, campaign: Campaign) -> dict:
        """Everything but the personalizations, built once per campaign."""
        if self._content is not None and self._content[0] == campaign:
            return self._content[1]
        message: dict = {
            "from": {"email": ascii_address(campaign.from_email)},
            "subject": one_line(campaign.subject),
            "content": [
                {"type": "text/plain", "value": campaign.text},
                {"type": "text/html",
                 "value": campaign.html.replace(UNSUBSCRIBE_PLACEHOLDER, HTML_KEY)},
            ],
            "categories": [campaign.slug[:255]],
            # test=1: the Event Webhook must not count reviewers' copies as the issue's
            "custom_args": {"issue": campaign.slug, **({"test": "1"} if campaign.test else {})},
            "headers": {"List-Id": list_id(campaign)},
        }
        if campaign.from_name:
            message["from"]["name"] = one_line(campaign.from_name)
        if campaign.reply_to:
            message["reply_to"] = {"email": ascii_address(campaign.reply_to)}
        self._content = (campaign, message)
        return message

    def build_body(self, campaign: Campaign, recipients: Sequence[Recipient]) -> tuple[dict, list]:
        """(request body as a dict, per-recipient Result or None for those in the request):
        exactly what send_batch posts (build_json), parsed back."""
        data, early = self.build_json(campaign, recipients)
        return json.loads(data), early

    def build_json(self, campaign: Campaign, recipients: Sequence[Recipient]
                   ) -> tuple[bytes, list[Result | None]]:
        """(request body as JSON bytes, per-recipient Result or None for those in the request)."""
        text, early = self._build(campaign, recipients)
        return text.encode("ascii"), early

    def _build(self, campaign: Campaign, recipients: Sequence[Recipient]
               ) -> tuple[str, list[Result | None]]:
        """build_json with the body as (ASCII-only) text.

        This runs once per recipient of a full send, so each personalization is written as a
        JSON fragment straight from strings (json's own C string escaper for every value:
        the same text json.dumps writes) instead of dicts that json.dumps walks again, and the
        checks take a fast path for the usual plain address and URL. Anything unusual goes
        through the exact checks of newsletter.deliver.message (ascii_address, check_url, one_line).
        """
        if len(recipients) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients per SendGrid request")
        test = campaign.test
        parts: list[str] = []
        early: list[Result | None] = []
        seen: set[str] = set()
        # check_url for the whole batch in one pass over all its URLs (a caller bug: raised
        # before anything of the batch is sent); empty and overlong ones are checked below.
        joined = "".join([r.unsubscribe_url or "" for r in recipients])
        if not joined.isascii() or any(c in joined for c in "\r\n <>"):
            check_batch(campaign, recipients)
        plain_address, q = _PLAIN_ADDRESS.fullmatch, _json_string
        for r in recipients:
            url = r.unsubscribe_url or ""
            if (not url and not test) or len(url) > MAX_URL:
                check_url(campaign, r)
            address = r.email
            if plain_address(address) is not None:
                address_q = f'"{address}"'  # nothing in it to escape
            else:
                try:
                    address = ascii_address(address)
                except AddressError as exc:
                    early.append(Result(r.email, Status.REJECTED, error=str(exc)))
                    continue
                address_q = q(address)
            lower = address.lower()
            if lower in seen:  # SendGrid refuses the whole request for a repeat
                early.append(Result(r.email, Status.REJECTED,
                                    error="the same address twice in one batch"))
                continue
            seen.add(lower)
            early.append(None)
            name = r.name
            if name:
                if name.isprintable() and "," not in name and ";" not in name:
                    name = name.strip()  # what the line below gives for such a name
                else:
                    name = one_line(name).replace(";", " ").replace(",", " ").strip()
            to = f'{{"email":{address_q},"name":{q(name)}}}' if name else \
                f'{{"email":{address_q}}}'
            url_q = q(url)
            html_q = q(escape(url)) if ("&" in url or '"' in url or "'" in url) else url_q
            if test:
                parts.append(f'{{"to":[{to}],"substitutions":{{{_TEXT_Q}:{url_q},'
                             f'{_HTML_Q}:{html_q}}}}}')
            else:
                # '"<' + url + '>"': "<" and ">" need no escaping in JSON
                parts.append(f'{{"to":[{to}],"substitutions":{{{_TEXT_Q}:{url_q},'
                             f'{_HTML_Q}:{html_q}}},"headers":{{"List-Unsubscribe":'
                             f'"<{url_q[1:-1]}>",{_ONE_CLICK_Q}}}}}')
        head = self._head(campaign)
        body = f'{head},"personalizations":[{",".join(parts)}]}}' if parts else \
            f'{head},"personalizations":[]}}'
        return body, early

    def _head(self, campaign: Campaign) -> str:
        """The body's JSON without its closing brace: everything but the personalizations."""
        if self._head_json is None or self._head_json[0] != campaign:
            self._head_json = (campaign, json.dumps(self._message(campaign))[:-1])
        return self._head_json[1]

    # -- sending -------------------------------------------------------------------------
    def prepare(self, campaign: Campaign, recipients: Sequence[Recipient]) -> None:
        """Build the body of the coming send_batch(campaign, recipients) now (the sender
        does this while its ledger commits). Only a call with these very objects, unchanged,
        uses it; an error here is left for send_batch to raise in its own time."""
        try:
            built = self._build(campaign, recipients)
        except Exception:  # noqa: BLE001 -- send_batch builds again and raises it
            self._ready = None
            return
        self._ready = (campaign, recipients, built)

    def send_batch(self, campaign: Campaign, recipients: Sequence[Recipient]) -> list[Result]:
        ready, self._ready = self._ready, None
        if ready is not None and ready[0] is campaign and ready[1] is recipients:
            body, early = ready[2]
        else:
            body, early = self._build(campaign, recipients)
        if None not in early:  # nobody left to send to
            return [r for r in early if r is not None]
        status, message_id, error = self._post(body)
        fields = {"status": status, "message_id": message_id, "error": error}
        return [result or _result(recipient.email, fields)
                for recipient, result in zip(recipients, early, strict=True)]

    def _post(self, body: str) -> tuple[Status, str | None, str | None]:
        """Post one request (the JSON body, ASCII text); (status for every recipient in it,
        X-Message-Id, error)."""
        from urllib.error import URLError

        from python_http_client.exceptions import HTTPError

        self.requests_made += 1
        try:
            response = self.client.client.mail.send.post(
                request_body=_JSONBody(body), request_headers=_JSON_TYPE, timeout=self.timeout)
        except HTTPError as exc:
            return self._http_error(exc)
        except URLError as exc:
            # urllib raises URLError only while connecting or sending the request: SendGrid
            # cannot have accepted an incomplete request.
            reason = exc.reason
            if isinstance(reason, (ConnectionError, TimeoutError, OSError)) and not isinstance(
                reason, _ssl_errors()
            ):
                raise RetryableError(f"cannot reach {self.host}: {self._scrub(reason)}",
                                     provider=NAME) from None
            raise ProviderError(f"cannot reach {self.host}: {self._scrub(reason)}",
                                provider=NAME) from None
        except (TimeoutError, OSError, _http_client_errors()) as exc:
            # The request went out; its answer did not come back.
            return (Status.UNKNOWN, None,
                    f"no answer from {self.host} after the request was sent "
                    f"({type(exc).__name__}: {self._scrub(exc) or 'timed out'}); "
                    "SendGrid may have accepted it")
        message_id = response.headers.get("X-Message-Id")
        if 200 <= response.status_code < 300:
            return Status.SENT, message_id, None
        return Status.FAILED, None, f"unexpected answer {response.status_code}"

    def _http_error(self, exc) -> tuple[Status, str | None, str | None]:
        code = exc.status_code
        text = self._scrub(_error_text(exc.body) or exc.reason or "")
        if code in (401, 403):
            raise ProviderAuthError(
                f"SendGrid refused the API key ({code} {text}); check SENDGRID_API_KEY "
                "and that the key has the Mail Send permission", provider=NAME, status=code,
            ) from None
        if code in (408, 429) or code >= 500:
            raise RetryableError(f"{code} {text}", provider=NAME, status=code,
                                 retry_after=_retry_after(exc.headers)) from None
        return Status.FAILED, None, f"{code} {text}"

    def _scrub(self, value) -> str:
        return str(value).replace(self._key, "[SENDGRID_API_KEY]")

    def close(self) -> None:
        self._client = None
        self._content = None
        self._head_json = None
        self._ready = None


# A JSON body we encoded ourselves, sent as is. python_http_client json.dumps the body
# unless the "Content-Type" it holds differs from exactly "application/json"; then it sends
# `request_body.encode("utf-8")`. SendGrid, though, answers 415 to anything but a plain
# "application/json" (a charset parameter included: sendgrid-csharp issues 910 and 929).
# So two spellings of the one header: python_http_client looks up "Content-Type" (not JSON:
# send the string as is), and urllib.request.Request, which files every header name as
# name.capitalize() where a later one replaces an earlier one, sends the last of the two:
# "Content-type: application/json". The order of this dict matters; a test checks what
# arrives on the wire.
_JSON_TYPE = {"Content-Type": "application/x-newsletter-prebuilt",
              "content-type": "application/json"}


class _Payload(bytes):
    """The encoded body. python_http_client formats `PAYLOAD: {data}` for a debug line on
    every request, log level or not: a repr of the whole body (about 2 ms per 1,000
    recipients). Formatted, this is one short line instead; sent, it is the same bytes."""

    def __str__(self) -> str:
        return f"<{len(self)} bytes of JSON>"

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class _JSONBody(str):
    """The body as the string python_http_client expects; `.encode()` returns the bytes
    already made (no second copy) as a _Payload. A str, so any other use of it still sees
    the same JSON text."""

    def __new__(cls, text: str) -> _JSONBody:
        self = super().__new__(cls, text)
        self._payload = _Payload(text.encode("utf-8"))
        return self

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self._payload


def _result_fast(email: str, fields: dict) -> Result:
    """Result(email, **fields) in half the time of the frozen dataclass's __init__ (which
    sets each field through object.__setattr__): one per recipient of every request.
    Right only while Result is a plain frozen dataclass (no __post_init__, no slots), so it
    is checked at import, and Result's own constructor is used if it ever stops being."""
    result = _new(Result)
    attributes = result.__dict__
    attributes["email"] = email
    attributes.update(fields)
    return result


def _result_plain(email: str, fields: dict) -> Result:
    return Result(email, **fields)


def _pick_result_maker():
    probe = {"status": Status.SENT, "message_id": "m", "error": None}
    try:
        fast = _result_fast("a@example.org", probe)
        same = fast == Result("a@example.org", **probe) and repr(fast) == repr(
            Result("a@example.org", **probe))
    except Exception:  # noqa: BLE001 -- any surprise: the plain constructor
        same = False
    return _result_fast if same else _result_plain


_new = object.__new__
_result = _pick_result_maker()


def _json_string(value: str) -> str:
    """A JSON string literal, exactly as json.dumps (ensure_ascii) writes it."""
    return _encode_basestring_ascii(value)


_TEXT_Q = _json_string(TEXT_KEY)
_HTML_Q = _json_string(HTML_KEY)
_ONE_CLICK_Q = f'"List-Unsubscribe-Post":{_json_string(ONE_CLICK)}'
# An address ascii_address() returns unchanged and that needs no JSON escaping: ASCII
# atext and dots, one "@", a domain of letters, digits, dots and hyphens.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
MAX_URL = MAX_LINE - 20


def _ssl_errors() -> tuple[type, ...]:
    import ssl

    return (ssl.SSLError, ssl.CertificateError)


def _http_client_errors() -> type:
    import http.client

    return http.client.HTTPException  # RemoteDisconnected, IncompleteRead, BadStatusLine


def _error_text(body) -> str:
    """SendGrid's `{"errors": [{"message", "field"}]}` as one line, at most 500 characters."""
    import json

    try:
        data = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
        parts = [
            f"{e.get('message', '')}" + (f" (field {e['field']})" if e.get("field") else "")
            for e in data.get("errors", [])
        ]
        text = "; ".join(p for p in parts if p)
    except (ValueError, AttributeError, TypeError):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    return " ".join(text.split())[:500]


def _retry_after(headers) -> float | None:
    """Seconds to wait: Retry-After (seconds or an HTTP date), else X-RateLimit-Reset (epoch)."""
    if headers is None:
        return None
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            pass
    return None


def _bypass_proxy_for_loopback(host: str) -> None:
    """urllib honours http(s)_proxy; a local test endpoint must never go through a proxy."""
    hostname = urlsplit(host).hostname or ""
    if hostname not in ("127.0.0.1", "localhost", "::1"):
        return
    for var in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(var, "")
        if hostname not in current.split(","):
            os.environ[var] = ",".join(filter(None, [current, hostname]))

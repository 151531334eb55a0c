"""A local stand-in for SendGrid's `POST /v3/mail/send` on 127.0.0.1, for tests.

Every body is validated against SendGrid's published request schema
(`tests/fixtures/sendgrid/mail-send.request.schema.json`, Draft 2020-12 with a FormatChecker), with
top-level `custom_args` overridden to an object of strings: the published schema types it as a
string, which the real API refuses (see tests/fixtures/sendgrid/README.md, "Known defect"). On top
of the schema it checks the limits the schema does not encode: at least one personalization,
every `to` non-empty, at most 1000 recipients in total, each address once, and the
`Authorization: Bearer <key>` header.

    with FakeSendGrid(api_key="SG.test") as sg:   # schema_path= another schema file
        provider = SendGridProvider("SG.test", host=sg.url)
        sg.fail_next("429", retry_after=7)      # or "500", "401", "400", "hang", "drop"; times=N
        sg.requests -> [Request(headers, body, problems)]
        sg.invalid  -> the requests whose body broke a rule (problems non-empty)

An accepted request gets 202, an empty body and `X-Message-Id`. A body that breaks a rule gets
400 with SendGrid's `{"errors": [...]}`. "hang" sleeps `hang_seconds` before answering (set it
past the client's timeout); "drop" reads the request and closes the connection unanswered.
The server stops by itself when the `with` block ends (hangs are cut short then).
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker

# A copy of SendGrid's published schema kept in the repository, so every clone runs these tests.
SCHEMA = Path(__file__).resolve().parent.parent / "fixtures" / "sendgrid" / (
    "mail-send.request.schema.json")


def load_validator(schema_path: Path = SCHEMA) -> Draft202012Validator:
    schema = json.loads(Path(schema_path).read_text(encoding="utf-8"))
    schema = copy.deepcopy(schema)
    # The published spec says "string"; the API (and sendgrid-python) use an object of strings.
    schema["properties"]["custom_args"] = {
        "type": "object", "additionalProperties": {"type": "string"},
    }
    return Draft202012Validator(schema, format_checker=FormatChecker())


def limit_problems(body: dict) -> list[str]:
    """The Mail Send limits that the schema does not encode."""
    problems = []
    personalizations = body.get("personalizations") or []
    if not personalizations:
        problems.append("personalizations: at least one is required")
    addresses: list[str] = []
    for i, p in enumerate(personalizations):
        if not p.get("to"):
            problems.append(f"personalizations.{i}.to: at least one recipient is required")
        for kind in ("to", "cc", "bcc"):
            addresses += [str(r.get("email", "")).lower() for r in p.get(kind) or []]
        subs = p.get("substitutions") or {}
        if len(json.dumps(subs).encode()) > 10000:
            problems.append(f"personalizations.{i}.substitutions: over 10,000 bytes")
        for name in (p.get("headers") or {}):
            if name.lower() in _RESERVED_HEADERS:
                problems.append(f"personalizations.{i}.headers: {name} cannot be set")
    if len(addresses) > 1000:
        problems.append(f"{len(addresses)} recipients in one request (at most 1000)")
    if len(set(addresses)) != len(addresses):
        problems.append("an address appears more than once")
    custom = body.get("custom_args") or {}
    if len(json.dumps(custom).encode()) >= 10000:
        problems.append("custom_args: 10,000 bytes or more")
    for name in (body.get("headers") or {}):
        if name.lower() in _RESERVED_HEADERS:
            problems.append(f"headers: {name} cannot be set")
    if not body.get("template_id") and not (body.get("subject") and body.get("content")):
        problems.append("subject and content are required without a template_id")
    return problems


_RESERVED_HEADERS = {
    "x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
    "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc",
}


@dataclass
class Request:
    headers: dict[str, str]
    body: dict | None
    problems: list[str] = field(default_factory=list)


class FakeSendGrid:
    def __init__(self, schema_path: Path = SCHEMA, *, api_key: str = "SG.test-key",
                 hang_seconds: float = 1.0) -> None:
        self.validator = load_validator(schema_path)
        self.api_key = api_key
        self.hang_seconds = hang_seconds
        self.requests: list[Request] = []
        self._plan: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def invalid(self) -> list[Request]:
        return [r for r in self.requests if r.problems]

    def fail_next(self, mode: str, *, times: int = 1, **options) -> None:
        """Answer the next `times` requests with `mode`: "429" (retry_after=, reset_in=), "500",
        "401", "403", "400", "hang" or "drop"."""
        with self._lock:
            self._plan += [(mode, options)] * times

    def _next_mode(self) -> tuple[str, dict]:
        with self._lock:
            return self._plan.pop(0) if self._plan else ("202", {})

    def __enter__(self) -> FakeSendGrid:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _answer(self, code: int, payload: dict | None = None,
                        headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode() if payload is not None else b""
                every = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "599",
                         "X-RateLimit-Reset": str(int(time.time()) + 1)}
                every.update(headers or {})
                self.send_response(code)
                for name, value in every.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                if data:
                    self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/v3/mail/send":
                    self._answer(404, {"errors": [{"message": f"no route {self.path}"}]})
                    return
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    fake.requests.append(Request(dict(self.headers), None, ["bad key"]))
                    self._answer(401, _errors("The provided authorization grant is invalid, "
                                              "expired, or revoked"))
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    fake.requests.append(Request(dict(self.headers), None, ["not JSON"]))
                    self._answer(400, _errors("Bad Request", None))
                    return
                problems = [
                    f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                    for e in fake.validator.iter_errors(body)
                ] + limit_problems(body)
                fake.requests.append(Request(dict(self.headers), body, problems))
                if problems:
                    self._answer(400, {"errors": [{"message": p} for p in problems]})
                    return
                mode, options = fake._next_mode()
                if mode == "202":
                    self._answer(202, None, {"X-Message-Id": uuid.uuid4().hex[:22]})
                elif mode == "429":
                    headers = {}
                    if "retry_after" in options:
                        headers["Retry-After"] = str(options["retry_after"])
                    if "reset_in" in options:  # X-RateLimit-Reset is epoch seconds
                        headers["X-RateLimit-Reset"] = str(int(time.time() + options["reset_in"]))
                    self._answer(429, _errors("too many requests"), headers)
                elif mode in ("500", "503"):
                    self._answer(int(mode), _errors("internal error"))
                elif mode in ("401", "403"):
                    self._answer(int(mode), _errors("The provided authorization grant is "
                                                    "invalid, expired, or revoked"))
                elif mode == "400":
                    self._answer(400, _errors("The from email does not contain a valid "
                                              "address.", "from.email"))
                elif mode == "hang":
                    fake._stopping.wait(options.get("seconds", fake.hang_seconds))
                    try:
                        self._answer(202, None, {"X-Message-Id": "late"})
                    except OSError:
                        pass
                elif mode == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                else:
                    raise ValueError(f"unknown mode {mode}")

        return Handler


def _errors(message: str, field_name: str | None = None) -> dict:
    return {"errors": [{"message": message, "field": field_name, "help": None}]}

"""The send loop: ledger batches -> provider -> ledger, exactly once per subscriber.

Order of one batch (never changed by a provider, see providers/base.py):
  1. claim: pending rows -> in_flight, committed durably, stamped with this sender's id, the
     batch and each row's place in the send order (anyone no longer active is dropped here);
  2. send_batch, with bounded retries of RetryableError (nothing was accepted) and backoff;
     a `per_message` provider (smtp, file) reports each recipient's Result as soon as it has
     it, and it is recorded at once (a commit without fsync) before the next message starts;
  3. record the rest of the outcomes after the provider answered.
A crash leaves rows in_flight; the next run settles them (deliver/recovery.py): per batch only
the message that was on the wire is `unknown` (a whole request for sendgrid), and only
`retry_unknown=True` sends it again. Rows `failed` (certainly not accepted) are retried by the
next run without asking.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from newsletter.deliver.campaign import Campaign, Kind, Recipient, Result, Status, issue_campaign
from newsletter.deliver.providers import Provider, get_provider, provider_class
from newsletter.deliver.providers.base import RetryableError
from newsletter.deliver.recovery import recover
from newsletter.errors import ConfigError, NewsletterError, ProviderAuthError, ProviderError
from newsletter.store import (
    ACTIVE,
    DONE_STATES,
    Claimed,
    Ledger,
    Sender,
    Senders,
    Store,
    normalise_email,
    open_store,
)

MAX_ATTEMPTS = 5  # per batch, for RetryableError
BACKOFF_BASE = 0.5  # seconds; doubled per attempt, with full jitter in [d/2, d]
BACKOFF_MAX = 30.0
RETRY_AFTER_MAX = 600.0  # never sleep longer than this on a provider's Retry-After
UNKNOWN_SAMPLE = 20  # addresses listed in a report; `status` shows the counts


def content_hash(rendered) -> str:
    """sha256 over html, text and subject (NUL-separated): what reviewers saw."""
    digest = hashlib.sha256()
    for part in (rendered.html, rendered.text, rendered.subject):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


# -- test sends ----------------------------------------------------------------------------


def validate_addresses(addresses: Iterable[str], field: str) -> list[str]:
    """Normalised, de-duplicated addresses, or NewsletterError naming the bad one."""
    seen: dict[str, None] = {}
    for address in addresses:
        try:
            seen[normalise_email(address)] = None
        except ValueError as exc:
            raise NewsletterError(f"invalid address {address!r}: {exc}", field=field) from None
    return list(seen)


def _test_unsubscribe_url(settings, email: str) -> str:
    from newsletter.tokens import LOCAL_URL, unsubscribe_url

    try:
        return unsubscribe_url(settings, email)
    except ConfigError:
        # A new user without NEWSLETTER_SECRET can still try a test send; the link is inert.
        base = (settings.public_url or LOCAL_URL).rstrip("/")
        return f"{base}/unsubscribe?t=test-send"


def send_test(
    rendered, settings, to: Sequence[str] | None = None, provider: Provider | None = None
) -> list[Result]:
    """Send "[TEST] subject" to `to` or the reviewers; remember what they saw.

    A test_sends row with content_hash(rendered) is written when at least one copy was
    accepted, so `send --all` can tell whether reviewers saw exactly this content.
    """
    if to:
        addresses = validate_addresses(to, "--to")
    else:
        if not settings.reviewers:
            raise ConfigError(
                "no reviewers: add sender.reviewers to newsletter.toml or pass --to EMAIL",
                field="sender.reviewers",
            )
        addresses = validate_addresses(settings.reviewers, "sender.reviewers")
    # Open the database first: a test send that cannot be recorded must not go out, or
    # `send --all` would later say reviewers never saw what they did see.
    store = open_store(settings)
    own = provider is None
    try:
        provider = provider or get_provider(settings)
    except BaseException:
        store.close()
        raise
    try:
        campaign = issue_campaign(rendered, settings, Kind.TEST)
        results: list[Result] = []
        for start in range(0, len(addresses), max(1, provider.max_batch)):
            chunk = [
                Recipient(email=a, unsubscribe_url=_test_unsubscribe_url(settings, a))
                for a in addresses[start:start + provider.max_batch]
            ]
            results.extend(_send_with_retries(provider, campaign, chunk, attempts=3))
        accepted = [r.email for r in results if r.status in (Status.SENT, Status.QUEUED)]
        if accepted:
            store.approvals.record(rendered.slug, content_hash(rendered), accepted)
    finally:
        store.close()
        if own:
            provider.close()
    return results


# -- the full send -------------------------------------------------------------------------


@dataclass
class SendReport:
    issue: str
    to_send: int = 0  # pending when this run started
    already_done: int = 0  # sent/queued/rejected by earlier runs
    sent: int = 0
    queued: int = 0
    rejected: int = 0
    failed: int = 0
    unknown: int = 0  # unknown in this run (not counting earlier ones)
    skipped: int = 0  # unsubscribed or suppressed after the ledger was seeded: not sent
    recovered_unknown: int = 0  # in_flight rows of a dead process, now unknown
    recovered_pending: int = 0  # in_flight rows of a dead process never attempted: pending
    recovered_sent: int = 0  # in_flight rows of a dead process shown to have arrived: sent
    recovery_notes: list[str] = field(default_factory=list)  # e.g. leftover files removed
    requeued_unknown: int = 0  # unknown rows resent on purpose (--retry-unknown)
    unknown_total: int = 0  # unknown rows in the ledger after this run
    unknown_sample: list[str] = field(default_factory=list)
    stopped: bool = False  # Ctrl-C / stop event: ended after a complete batch
    batches: int = 0
    requests: int = 0  # provider calls, retries included
    started: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0

    @property
    def done(self) -> int:
        """Recipients this run has an answer for."""
        return self.sent + self.queued + self.rejected + self.failed + self.unknown

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


def recipient_count(settings, slug: str | None = None, *, retry_unknown: bool = False
                    ) -> tuple[int, int]:
    """(to send now, active subscribers) for the confirmation question: active subscribers
    whose ledger row for `slug` is not final (unknown ones only with retry_unknown)."""
    done = list(DONE_STATES) + ([] if retry_unknown else ["unknown"])
    with open_store(settings) as store:
        active = store.subscribers.counts()[ACTIVE]
        if slug is None:
            return active, active
        return active - store.ledger(slug).active_done(done), active


def default_connections(settings) -> int:
    """Provider connections used at once by a full send (NEWSLETTER_CONNECTIONS).

    By default, as many as the chosen provider says (its `default_connections`).
    """
    value = settings.getenv("NEWSLETTER_CONNECTIONS")
    if value is None:
        return provider_class(settings).default_connections
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= 32:
        raise ConfigError("must be a whole number from 1 to 32", field="NEWSLETTER_CONNECTIONS")
    return number


@dataclass
class _Run:
    """What the workers of one send share. `lock` guards report, progress and errors."""

    slug: str
    settings: object
    campaign: Campaign
    size: int
    pacer: _Pacer
    report: SendReport
    progress: Callable[[SendReport], None] | None
    stop: threading.Event  # set by the caller (Ctrl-C) or by a worker that failed
    outer_stop: threading.Event | None
    max_attempts: int
    backoff: float
    remaining: int | None = None  # a sample: rows this run may still claim
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Our own workers take turns at the database: SQLite's busy handler would sleep for
    # milliseconds between retries, a lock hands over at once.
    db_lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[BaseException] = field(default_factory=list)
    # Per-message outcomes (providers that report them): this ledger over a connection whose
    # commits skip the fsync, shared by the workers under db_lock.
    fast: Ledger | None = None
    sender_id: str | None = None
    # The ledger's rows being added while the send claims them (see _start_seeding).
    seeder: _Seeder | _SeedingElsewhere | None = None

    def stopping(self) -> bool:
        if self.outer_stop is not None and self.outer_stop.is_set():
            self.stop.set()
        return self.stop.is_set()


class _Seeder:
    """Seeds a send's ledger on a connection of its own while the send claims the rows
    (backends whose writers run side by side): the first batch goes out after the first
    chunk instead of after the whole list. Small chunks, so no snapshot lives long enough to
    keep the claims' row versions from being pruned (HOT updates). Commits skip the fsync: a
    claim's durable commit comes later in the log and makes them durable too. When done, it
    marks this sender as the one that seeded and lets go of the seed lock."""

    CHUNK = 1000

    def __init__(self, store: Store, slug: str, sender: Sender) -> None:
        # Counted before the seed starts: a count that joins `sends` while rows pour into it
        # could be planned for a table still nearly empty (a scan per subscriber).
        self.to_send = Ledger(store.conn, slug).to_seed_and_pending()
        conn = store.connect_fast()
        assert conn is not None  # backends with concurrent writes offer one
        self._store = store
        self._conn = conn
        self._slug = slug
        self._sender = sender
        self._changed = threading.Condition()
        self.chunks = 0  # committed so far: read it before a claim, see wait()
        self.over = False  # the seed ended (done, failed or cancelled)
        self.error: BaseException | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-seed", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            Ledger(self._conn, self._slug).seed(self.CHUNK, on_chunk=self._chunk)
            Senders(self._conn).mark_seeded(self._sender.id)
        except _SeedCancelled:  # the send stopped early: the next one seeds the rest
            pass
        except BaseException as exc:  # raised in the sending threads (wait(), send_all)
            self.error = exc
        finally:
            try:
                self._conn.close()
                self._store.seed_unlock(self._slug)
            finally:
                with self._changed:
                    self.over = True
                    self._changed.notify_all()

    def _chunk(self) -> None:
        with self._changed:
            self.chunks += 1
            self._changed.notify_all()
        if self._cancel.is_set():
            raise _SeedCancelled

    def wait(self, seen: int) -> None:
        """A claim found nothing after `seen` chunks were committed: wait for the next chunk
        or the end."""
        with self._changed:
            while not self.over and self.chunks == seen:
                self._changed.wait(0.5)
            if self.error is not None:
                raise self.error

    def join(self) -> None:
        """Stop after the chunk under way (the send is over: everything seeded was claimed,
        or it stopped early) and wait for that."""
        self._cancel.set()
        self._thread.join()


class _SeedCancelled(Exception):
    pass


class _SeedingElsewhere:
    """Another live sender is seeding this send's ledger: claims follow its chunks."""

    chunks = 0
    error = None

    def __init__(self, store: Store, slug: str) -> None:
        self._store = store
        self._slug = slug
        self.over = False

    def wait(self, seen: int) -> None:
        """A claim found nothing: a moment for the other's next chunk, or note that it
        stopped seeding (then the next claim walks everything once more)."""
        if self._store.seeding_elsewhere(self._slug):
            time.sleep(0.01)  # its next chunk is milliseconds away
        else:
            self.over = True

    def join(self) -> None:
        pass


def _start_seeding(store: Store, ledger: Ledger, me: Sender) -> _Seeder | _SeedingElsewhere | None:
    """Seed the ledger: every active subscriber not in it yet gets a pending row.

    Where senders share a send (PostgreSQL), one seeds while the others join: under the seed
    lock, a sender seeds in the background (claims start after its first chunk) unless a
    live sender already seeded this issue; one that finds another seeding follows its
    chunks. Elsewhere (SQLite: one sender at a time) the seed is done before any claim.
    Returns what the claims wait on when they find nothing (None: the seed is complete)."""
    if not store.concurrent_writes:
        ledger.seed()
        return None
    if not store.try_seed_lock(ledger.issue):
        return _SeedingElsewhere(store, ledger.issue)
    if any(other.id != me.id and store.sender_alive(other)
           for other in store.sender_records.seeded(ledger.issue)):
        store.seed_unlock(ledger.issue)
        return None  # join that send as it is
    return _Seeder(store, ledger.issue, me)


def send_all(
    rendered,
    settings,
    provider: Provider | None = None,
    *,
    retry_unknown: bool = False,
    progress: Callable[[SendReport], None] | None = None,
    stop: threading.Event | None = None,
    connections: int | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    backoff: float = BACKOFF_BASE,
    sample: int | None = None,
) -> SendReport:
    """Send the issue to every active subscriber not yet in a final ledger state.

    `sample`: send to at most this many of them, chosen at random (a canary); a later run
    without it sends the rest, once each.

    `provider`: use this one (one connection; the caller closes it); by default
    `connections` providers from get_provider(settings) work in parallel threads, each
    claiming its own batches from the ledger.

    Raises ProviderAuthError (credentials refused: that batch goes back to pending, nothing
    more is sent) or ProviderError (the provider kept failing: that batch is `failed`, the
    next run retries it). Ctrl-C or `stop` ends the run after the current batch(es).
    """
    slug = rendered.slug
    settings.require_secret()  # before anything is claimed
    store = open_store(settings)
    providers: list[Provider] = []
    try:
        with store.send_lock() as alone:
            if provider is not None:
                workers = [provider]
            else:
                n = connections or default_connections(settings)
                for _ in range(n):
                    providers.append(get_provider(settings))
                workers = providers
            report = SendReport(issue=slug)
            ledger = store.ledger(slug)
            # With other live senders on this send, rows in flight may be theirs: recover
            # only where the backend tells each sender's liveness apart (PostgreSQL).
            if alone is not False or store.knows_each_sender:
                recovered = recover(store, slug, getattr(workers[0], "recover", None))
                report.recovered_unknown = recovered.unknown
                report.recovered_pending = recovered.requeued
                report.recovered_sent = recovered.settled
                report.recovery_notes = recovered.notes
            fast = store.connect_fast() if all(
                getattr(p, "per_message", False) for p in workers) else None
            per_message = fast is not None
            # Durable before any claim: recovery reads it to know what this send's rows mean.
            me = store.sender_records.start(slug, socket.gethostname(), os.getpid(),
                                            store.durability_epoch(), per_message)
            store.hold_sender(me)  # before any claim stamps a row with its id
            if retry_unknown:
                report.requeued_unknown = ledger.requeue(["unknown"])
            ledger.requeue(["failed"])
            seeder = None
            if sample is None:
                seeder = _start_seeding(store, ledger, me)
            else:
                ledger.seed_sample(sample)
            counts = ledger.counts()
            if isinstance(seeder, _Seeder):  # the rows being added count too
                counts["pending"] = seeder.to_send
            elif isinstance(seeder, _SeedingElsewhere):  # as many as another is adding
                done = sum(n for state, n in counts.items() if state != "pending")
                counts["pending"] = max(counts["pending"],
                                        store.subscribers.counts()["active"] - done)
            report.to_send = counts["pending"] if sample is None else min(sample,
                                                                          counts["pending"])
            report.already_done = sum(counts[s] for s in DONE_STATES)

            size = max(1, min(settings.batch_size, min(p.max_batch for p in workers)))
            if settings.rate_limit:
                size = max(1, min(size, int(settings.rate_limit)))  # smooth, not bursty
            if len(workers) > 1 and report.to_send:
                size = max(1, min(size, -(-report.to_send // len(workers))))  # all busy
            run = _Run(slug, settings, issue_campaign(rendered, settings), size,
                       _Pacer(settings.rate_limit), report, progress, threading.Event(),
                       stop, max_attempts, backoff, remaining=sample, sender_id=me.id)
            if fast is not None:
                run.fast = Ledger(fast, slug)
            run.seeder = seeder
            if progress:
                progress(report)
            try:
                if len(workers) == 1:
                    _worker(run, workers[0], store, overlap=True)
                else:
                    _parallel(run, workers, store)
            finally:
                if seeder is not None:
                    seeder.join()
                report.elapsed = time.monotonic() - report.started
                report.unknown_total = ledger.unknown_count()
                report.unknown_sample = ledger.emails("unknown", UNKNOWN_SAMPLE)
            if run.errors:
                raise run.errors[0]
            if seeder is not None and seeder.error is not None:
                raise seeder.error  # some were not added: a rerun sends them
            return report
    finally:
        for p in providers:
            p.close()
        store.close()


def _parallel(run: _Run, workers: list[Provider], store: Store) -> None:
    def work(provider: Provider) -> None:
        try:
            _worker(run, provider, store)  # on this thread's own connection
        except BaseException as exc:  # handed to the caller's thread
            with run.lock:
                run.errors.append(exc)
            run.stop.set()

    threads = [threading.Thread(target=work, args=(p,), name=f"send-{i}", daemon=True)
               for i, p in enumerate(workers)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        # Ctrl-C reaches only this thread: the workers finish the batch they have in flight.
        run.stop.set()
        run.report.stopped = True
        for t in threads:
            t.join()


def _worker(run: _Run, provider: Provider, store: Store, *, overlap: bool = False) -> None:
    ledger = store.ledger(run.slug)
    ledger.sender = run.sender_id
    if isinstance(run.seeder, _SeedingElsewhere):
        ledger.from_the_end()  # another sender started this send: meet it in the middle
    outcomes: list = []  # the previous batch's, written together with the next claim
    try:
        _work(run, provider, ledger, outcomes, overlap)
    finally:
        try:
            if outcomes:
                with run.db_lock:
                    ledger.record(outcomes)
        finally:
            ledger.close()


def _work(run: _Run, provider: Provider, ledger: Ledger, outcomes: list,
          overlap: bool = False) -> None:
    from newsletter.tokens import unsubscribe_urls

    report = run.report
    url_of = unsubscribe_urls(run.settings)  # the signing key prepared once per send
    prepare = getattr(provider, "prepare", None)

    def recipients_of(claimed: list[Claimed]) -> list[Recipient]:
        recipients = [Recipient(c.email, c.name, url_of(c.email)) for c in claimed]
        if prepare is not None:
            prepare(run.campaign, recipients)  # e.g. build the request body now
        return recipients

    while True:
        if run.stopping():
            if not run.errors:
                report.stopped = True
            return
        size = run.size
        if run.remaining is not None:
            with run.lock:
                size = min(size, run.remaining)
                run.remaining -= size
            if size <= 0:
                return
        # One connection (overlap): the batch's links and request are made while the claim
        # commits in a helper thread (Ledger.claim); it returns once that is durable.
        # Several: each worker holds db_lock for its claim only, so they are made after.
        # Read before the claim: what the seed had committed, and whether it was over.
        seeding = run.seeder is not None and not run.seeder.over
        seeded = run.seeder.chunks if run.seeder is not None else 0
        with run.db_lock:
            claimed, skipped, recipients = ledger.claim(
                size, outcomes, recipients_of if overlap else None, rewind=not seeding)
        outcomes.clear()
        if run.remaining is not None and len(claimed) < size:
            with run.lock:  # people dropped at the claim do not use up the sample
                run.remaining += size - len(claimed)
        if skipped:
            with run.lock:
                report.skipped += skipped
        if not claimed:
            if seeding and run.seeder is not None:
                run.seeder.wait(seeded)  # its next chunk or its end, then claim again
                continue
            if skipped:
                continue
            return
        if recipients is None:
            recipients = recipients_of(claimed)
        try:
            run.pacer.wait(len(recipients))
        except BaseException:  # a second Ctrl-C while waiting: this batch was not sent
            with run.db_lock:
                ledger.release(claimed)
            raise
        recorded: set[str] = set()  # outcomes already written message by message
        on_result = _recorder(run, recorded) if run.fast is not None else None
        try:
            results = _send_with_retries(provider, run.campaign, recipients,
                                         attempts=run.max_attempts, backoff=run.backoff,
                                         stop=run.stop, report=report, lock=run.lock,
                                         outer_stop=run.outer_stop, on_result=on_result)
        except ProviderAuthError as exc:
            with run.db_lock:
                ledger.release(claimed)  # refused credentials: nothing was accepted
            run.stop.set()
            exc.message += "; the send stopped and nothing more was sent (fix it and rerun)"
            raise
        except _StoppedWhileWaiting:
            with run.db_lock:
                ledger.release(claimed)  # stopped during backoff: not sent
            if not run.errors:
                report.stopped = True
            return
        except ProviderError as exc:
            # RetryableError after the last attempt, or an error before anything was sent.
            run.stop.set()
            with run.db_lock:
                ledger.record([("failed", None, str(exc), claimed)])
            with run.lock:
                report.failed += len(claimed)
                answered = report.done - len(claimed)
            exc.message += (
                f"; the send stopped after {answered} answers this run"
                f" ({len(claimed)} marked failed; rerun to retry them)"
            )
            raise
        except KeyboardInterrupt:
            # Interrupted mid-request: the provider may have accepted it.
            _record_unknown(run, ledger, claimed, recorded,
                            "interrupted while the request was in flight")
            run.stop.set()
            report.stopped = True
            return
        except BaseException as exc:
            run.stop.set()
            _record_unknown(run, ledger, claimed, recorded,
                            f"unexpected error in flight: {exc!r}")
            raise
        batch_outcomes = _tally(run, claimed, results)
        if recorded:
            batch_outcomes = [(state, mid, err, rest) for state, mid, err, rows in batch_outcomes
                              if (rest := [c for c in rows if c.email not in recorded])]
        outcomes.extend(batch_outcomes)
        if len(results) > 1 and all(r.status == Status.FAILED for r in results):
            # The provider refused a whole batch (e.g. HTTP 400): the next would fare the same.
            # (A batch of one is one recipient's answer, e.g. a greylisting 450: go on.)
            run.stop.set()
            raise ProviderError(
                f"refused a whole batch ({results[0].error}); the send stopped"
                f" ({len(results)} marked failed; fix the cause and rerun to retry them)",
                provider=getattr(provider, "name", "provider"),
            )


def _recorder(run: _Run, recorded: set[str]) -> Callable[[Result], None]:
    """The per-message outcome callback: one row written (no fsync) before the provider
    starts the next message."""
    fast = run.fast
    assert fast is not None

    def on_result(result: Result) -> None:
        with run.db_lock:
            fast.record_one(result.email, Status(result.status).value, result.message_id,
                            result.error)
        recorded.add(result.email)

    return on_result


def _record_unknown(run: _Run, ledger: Ledger, claimed: list[Claimed], recorded: set[str],
                    reason: str) -> None:
    """A batch interrupted mid-send. Per message: only the first row without an outcome can
    have been on the wire; the rest were not attempted and go back to pending."""
    left = [c for c in claimed if c.email not in recorded]
    unsure, untouched = (left[:1], left[1:]) if run.fast is not None else (left, [])
    with run.db_lock:
        ledger.record([("unknown", None, reason, unsure)])
        if untouched:
            ledger.release(untouched)
    with run.lock:
        run.report.unknown += len(unsure)


def _tally(run: _Run, claimed: list[Claimed], results: list[Result]) -> list:
    """The ledger outcomes of one answered batch, grouped by (state, message_id, error) as
    Ledger takes them; counts them in the report."""
    groups: dict[tuple, list] = {}
    if len(results) == len(claimed) and all(
        r.email == c.email for r, c in zip(results, claimed, strict=True)
    ):
        pairs = zip(claimed, results, strict=True)  # one Result per recipient, in order
    else:
        by_email = {r.email: r for r in results}
        pairs = ((c, by_email.get(c.email)) for c in claimed)
    for c, result in pairs:
        if result is None:  # a provider that lost track of someone: it may have been sent
            key = ("unknown", None, "the provider returned no result")
        else:
            key = (result.status, result.message_id, result.error)
        group = groups.get(key)
        if group is None:
            groups[key] = group = []
        group.append(c)
    outcomes = [(Status(state).value, mid, err, rows)
                for (state, mid, err), rows in groups.items()]
    report = run.report
    with run.lock:
        for state, _, _, rows in outcomes:
            setattr(report, state, getattr(report, state) + len(rows))
        report.batches += 1
        if run.progress:
            report.elapsed = time.monotonic() - report.started
            run.progress(report)
    return outcomes


class _StoppedWhileWaiting(Exception):
    pass


def _send_with_retries(
    provider: Provider,
    campaign: Campaign,
    recipients: list[Recipient],
    *,
    attempts: int,
    backoff: float = BACKOFF_BASE,
    stop: threading.Event | None = None,
    report: SendReport | None = None,
    lock: threading.Lock | None = None,
    outer_stop: threading.Event | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """send_batch, retrying RetryableError (certainly not accepted) with backoff + jitter.
    `on_result`: passed to a per-message provider (each Result as soon as it is known)."""
    for attempt in range(1, attempts + 1):
        if report is not None:
            with lock or threading.Lock():
                report.requests += 1
        try:
            if on_result is not None:
                return provider.send_batch(campaign, recipients, on_result=on_result)
            return provider.send_batch(campaign, recipients)
        except RetryableError as exc:
            if attempt == attempts:
                exc.message += f" (gave up after {attempts} attempts)"
                raise
            delay = min(BACKOFF_MAX, backoff * 2 ** (attempt - 1))
            delay = random.uniform(delay / 2, delay)
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, RETRY_AFTER_MAX))
            if stop is not None:
                if _wait(delay, stop, outer_stop):
                    raise _StoppedWhileWaiting() from None
            else:
                time.sleep(delay)
    raise AssertionError("unreachable")


def _wait(delay: float, *events: threading.Event | None) -> bool:
    """Sleep up to `delay`; True as soon as any of the events is set."""
    end = time.monotonic() + delay
    while (left := end - time.monotonic()) > 0:
        if any(e is not None and e.is_set() for e in events):
            return True
        time.sleep(min(left, 0.05))
    return any(e is not None and e.is_set() for e in events)


class _Pacer:
    """At most `rate` messages per second on average since the start (0 = no limit)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.count = 0
        self.lock = threading.Lock()

    def wait(self, n: int) -> None:
        with self.lock:  # reserve a slot; sleep outside the lock
            due = self.start + self.count / self.rate if self.rate > 0 else 0.0
            self.count += n
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)



"""Benchmark of a full send (not a test): `.venv/bin/python bench/send.py [--help]`.

SendGrid: 10,000 and 100,000 subscribers through `send_all` (ledger included: seed, claim,
record) and the real SendGrid provider, to a local endpoint (another process) that answers
202, against the naive way (one API request per recipient, timed on a sample of 2,000 and
extrapolated) in the same run.

SMTP: 20,000 subscribers through `send_all` and the SMTP provider (NEWSLETTER_CONNECTIONS,
default 4) to postfix's `smtp-sink`, against the naive loop (a new connection and a fresh
serialisation per message, on a sample of 2,000) and beside postfix's own load generator
`smtp-source` on the same sink (1 and 4 sessions, messages of the same size).

Backends (`--db sqlite,postgresql`): the SendGrid path at 100,000 subscribers on each
database side by side in one run (`postgresql` starts a throwaway cluster the way the tests
do; a `postgresql://` URL uses that server, emptying the newsletter's tables first), plus two
cooperating senders sharing one send on PostgreSQL.

Every sender runs as its own subprocess, so its peak memory (ru_maxrss) is its own. Each
measurement is repeated (3 times, 1 with --quick) and the median printed as Markdown.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ISSUE = ROOT / "issues" / "2011-05.yaml"
KEY = "SG.bench-key"
SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"


# -- helpers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "newsletter.toml", folder / "newsletter.toml")
    shutil.copytree(ROOT / "templates", folder / "templates", dirs_exist_ok=True)
    (folder / "issues").mkdir(exist_ok=True)
    shutil.copy(ISSUE, folder / "issues" / ISSUE.name)
    return folder


def make_db(path: Path | str, n: int) -> None:
    from newsletter.store import is_url, open_store
    if is_url(path):
        from tests.support import postgres
        postgres.emptied(str(path))
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    with open_store(path) as store:
        store.subscribers.add_many(
            ((f"reader{i:07d}@example.org", f"Reader {i}") for i in range(n)), "bench")


def child_env(project: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEWSLETTER_", "SENDGRID_", "SMTP_"))}
    env.update(NEWSLETTER_CONFIG=str(project / "newsletter.toml"),
               NEWSLETTER_DB=str(project / "bench.db"),
               NEWSLETTER_OUTBOX=str(project / "outbox"),
               NEWSLETTER_SECRET="bench-secret", NO_PROXY="127.0.0.1,localhost",
               PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def run_child(mode: str, env: dict[str, str], *args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, mode, *args], env=env, check=False,
                         capture_output=True, text=True, timeout=1800)
    if out.returncode:
        raise SystemExit(f"bench child {mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median(values: list[float]) -> float:
    return statistics.median(values)


# -- children (each one process: its ru_maxrss is its own) ---------------------------------


def _load():
    from newsletter.compose.issue import load_issue
    from newsletter.compose.render import render_issue
    from newsletter.config import load_settings

    settings = load_settings()
    return settings, render_issue(load_issue(ISSUE), settings)


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    """CPU seconds of this process so far (all threads): a measure the neighbours on a
    shared machine disturb far less than wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_send_all() -> None:
    """The real thing: send_all with the configured provider, ledger included."""
    import faulthandler

    from newsletter.deliver import sender
    if os.environ.get("BENCH_STACKS_AFTER"):  # where a run that stalls spends its time
        faulthandler.dump_traceback_later(float(os.environ["BENCH_STACKS_AFTER"]))
    settings, rendered = _load()
    cpu = _cpu()
    began = time.time()  # wall clock: comparable across the processes of one send
    start = time.perf_counter()
    report = sender.send_all(rendered, settings)
    elapsed = time.perf_counter() - start
    cpu = _cpu() - cpu
    print(json.dumps({"sent": report.sent, "unknown": report.unknown, "failed": report.failed,
                      "seconds": elapsed, "rate": report.sent / elapsed, "cpu": cpu,
                      "began": began, "ended": began + elapsed,
                      "requests": report.requests, "maxrss_mb": _maxrss_mb()}))


def _sample_recipients(settings, n: int):
    from itertools import islice

    from newsletter.deliver.campaign import Recipient
    from newsletter.store import open_store
    from newsletter.tokens import unsubscribe_url

    with open_store(settings) as store:
        people = list(islice(store.subscribers.list(batch=n), n))
    return [Recipient(p.email, p.name, unsubscribe_url(settings, p.email)) for p in people]


def child_naive_sendgrid(n: str) -> None:
    """One API request per recipient (no ledger: the naive script has none)."""
    from newsletter.deliver.campaign import issue_campaign
    from newsletter.deliver.providers.sendgrid import SendGridProvider

    settings, rendered = _load()
    recipients = _sample_recipients(settings, int(n))
    provider = SendGridProvider.from_settings(settings)
    campaign = issue_campaign(rendered, settings)
    start = time.perf_counter()
    for r in recipients:
        provider.send_batch(campaign, [r])
    elapsed = time.perf_counter() - start
    print(json.dumps({"sent": len(recipients), "seconds": elapsed,
                      "rate": len(recipients) / elapsed, "maxrss_mb": _maxrss_mb()}))


def child_bare_sendgrid(n: str) -> None:
    """The floor: the bare sendgrid client posting pre-built 1,000-recipient bodies (10
    distinct bodies, each posted n/10,000 times): JSON encoding and HTTP only, no ledger, no
    per-recipient work. The issue quotes about 180,000 recipients/s for this on its machine."""
    from sendgrid import SendGridAPIClient

    from newsletter.deliver.campaign import issue_campaign
    from newsletter.deliver.providers.sendgrid import SendGridProvider

    settings, rendered = _load()
    provider = SendGridProvider.from_settings(settings)
    campaign = issue_campaign(rendered, settings)
    recipients = _sample_recipients(settings, 10_000)
    bodies = [provider.build_body(campaign, recipients[i:i + 1000])[0]
              for i in range(0, 10_000, 1000)]
    client = SendGridAPIClient(settings.getenv("SENDGRID_API_KEY"),
                               host=settings.getenv("SENDGRID_API_HOST"))
    rounds = max(1, int(n) // 10_000)
    cpu = _cpu()
    start = time.perf_counter()
    for _ in range(rounds):
        for body in bodies:
            client.client.mail.send.post(request_body=body, timeout=30)
    elapsed = time.perf_counter() - start
    cpu = _cpu() - cpu
    sent = rounds * 10_000
    print(json.dumps({"sent": sent, "seconds": elapsed, "rate": sent / elapsed, "cpu": cpu,
                      "maxrss_mb": _maxrss_mb()}))


def child_naive_smtp(n: str, host: str, port: str) -> None:
    """A new connection and a fresh serialisation (EmailMessage) per message."""
    import smtplib
    from email.message import EmailMessage
    from email.utils import formataddr

    settings, rendered = _load()
    recipients = _sample_recipients(settings, int(n))
    start = time.perf_counter()
    for r in recipients:
        html, text = rendered.personalise(r.unsubscribe_url)
        msg = EmailMessage()
        msg["From"] = formataddr((settings.from_name, settings.from_email))
        msg["To"] = r.email
        msg["Subject"] = rendered.subject
        msg["List-Unsubscribe"] = f"<{r.unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(text, cte="quoted-printable")
        msg.add_alternative(html, subtype="html", cte="quoted-printable")
        with smtplib.SMTP(host, int(port)) as conn:
            conn.send_message(msg)
    elapsed = time.perf_counter() - start
    print(json.dumps({"sent": len(recipients), "seconds": elapsed,
                      "rate": len(recipients) / elapsed, "maxrss_mb": _maxrss_mb()}))


def child_message_size() -> None:
    from newsletter.deliver.campaign import Recipient, issue_campaign
    from newsletter.deliver.message import MessageFactory
    from newsletter.tokens import unsubscribe_url

    settings, rendered = _load()
    factory = MessageFactory(issue_campaign(rendered, settings))
    email = "reader0000001@example.org"
    data = factory.render(Recipient(email, "Reader 1", unsubscribe_url(settings, email)))
    print(json.dumps({"bytes": len(data)}))


def serve_202(latency_ms: str = "0") -> None:
    """A local endpoint that reads each request and answers 202 (keep-alive, no parsing),
    after `latency_ms` milliseconds (as a provider across the internet would)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    latency = float(latency_ms) / 1000

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                remaining -= len(self.rfile.read(min(remaining, 1 << 20)))
            if latency:
                time.sleep(latency)
            self.send_response(202)
            self.send_header("X-Message-Id", "bench")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


# -- the parent ----------------------------------------------------------------------------


def send_all_runs(project: Path, env: dict[str, str], n: int, repeats: int,
                  target: Path | str | None = None):
    """`repeats` sends to a fresh database of n subscribers: (runs, median s, median CPU s)."""
    runs = []
    for _ in range(repeats):
        make_db(target or project / "bench.db", n)
        result = run_child("send-all", env)
        assert result["sent"] == n, result
        runs.append(result)
    return runs, median([r["seconds"] for r in runs]), median([r["cpu"] for r in runs])


def bench_sendgrid(work: Path, repeats: int, sizes: tuple[int, ...]) -> list[str]:
    project = make_project(work / "sg")
    server = subprocess.Popen([sys.executable, __file__, "serve-202"], stdout=subprocess.PIPE,
                              text=True)
    try:
        port = int(server.stdout.readline())
        env = child_env(project, NEWSLETTER_PROVIDER="sendgrid", SENDGRID_API_KEY=KEY,
                        SENDGRID_API_HOST=f"http://127.0.0.1:{port}")
        lines = ["| subscribers | way | requests | seconds (median) | recipients/s | "
                 "recipients per CPU-second of the sender | peak RSS of the sender |",
                 "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
        best = {}
        for n in sizes:
            runs, secs, cpu = send_all_runs(project, env, n, repeats)
            rss = max(r["maxrss_mb"] for r in runs)
            best[n] = n / secs
            lines.append(f"| {n:,} | send_all (1,000 per request, ledger) | "
                         f"{runs[0]['requests']} | {secs:.2f} | {n / secs:,.0f} | "
                         f"{n / cpu:,.0f} | {rss:.0f} MB |")
        make_db(project / "bench.db", 10_000)
        bare = [run_child("bare-sendgrid", env, str(max(sizes))) for _ in range(repeats)]
        secs = median([r["seconds"] for r in bare])
        lines.append(f"| {bare[0]['sent']:,} | floor: bare sendgrid client, pre-built bodies, "
                     f"no ledger | {bare[0]['sent'] // 1000} | {secs:.2f} | "
                     f"{bare[0]['sent'] / secs:,.0f} | "
                     f"{bare[0]['sent'] / median([r['cpu'] for r in bare]):,.0f} | "
                     f"{max(r['maxrss_mb'] for r in bare):.0f} MB |")
        make_db(project / "bench.db", 2000)
        naive = [run_child("naive-sendgrid", env, "2000") for _ in range(repeats)]
        rate = median([r["rate"] for r in naive])
        big = max(sizes)
        lines.append(f"| {big:,} (extrapolated from 2,000) | naive: one request per "
                     f"recipient | {big:,} | {big / rate:.1f} | {rate:,.0f} | - | "
                     f"{max(r['maxrss_mb'] for r in naive):.0f} MB |")
        lines.append("")
        lines.append(f"Ratio at {big:,}: send_all is {best[big] / rate:.0f}x the naive way.")
        return lines
    finally:
        server.terminate()
        server.wait(timeout=10)


def bench_backends(work: Path, repeats: int, n: int, dbs: list[str],
                   latency_ms: float = 0) -> list[str]:
    """The SendGrid path at n subscribers on each database, then two cooperating senders on
    each PostgreSQL one; the endpoint answers after `latency_ms`."""
    from contextlib import ExitStack

    from tests.support import postgres

    project = make_project(work / "db")
    server = subprocess.Popen([sys.executable, __file__, "serve-202", str(latency_ms)],
                              stdout=subprocess.PIPE, text=True)
    with ExitStack() as stack:
        stack.callback(server.wait, timeout=10)
        stack.callback(server.terminate)
        port = int(server.stdout.readline())
        targets: dict[str, str] = {}
        for db in dbs:
            if db == "sqlite":
                targets[db] = str(project / "bench.db")
            elif db == "postgresql":
                bindir = postgres.find_bindir()
                if bindir is None:
                    raise SystemExit(postgres.missing_reason())
                # A durable cluster (fsync on), as a real server would be.
                cluster = stack.enter_context(postgres.Cluster.start(bindir, durable=True))
                targets["postgresql (local cluster)"] = stack.enter_context(cluster.database())
            else:
                from newsletter.store import describe
                targets[describe(db)] = db
        # Interleaved: every repeat runs each way once, so a change in the machine's load
        # (shared with other work) falls on all of them alike.
        ways: list[tuple[str, str, int]] = []  # (name, target, senders)
        for name, target in targets.items():
            ways.append((name, target, 1))
            if name != "sqlite":
                ways.append((name, target, 2))
        seconds: dict[tuple[str, int], list[float]] = {(w[0], w[2]): [] for w in ways}
        for _ in range(repeats):
            for name, target, senders in ways:
                env = child_env(project, NEWSLETTER_PROVIDER="sendgrid", SENDGRID_API_KEY=KEY,
                                SENDGRID_API_HOST=f"http://127.0.0.1:{port}",
                                NEWSLETTER_DB=target)
                if senders == 1:
                    make_db(target, n)
                    result = run_child("send-all", env)
                    assert result["sent"] == n, result
                    seconds[(name, 1)].append(result["seconds"])
                else:
                    seconds[(name, 2)].append(two_senders(target, env, n))
        lines = ["| database | subscribers | senders | seconds (median) | recipients/s |"
                 " vs SQLite | vs one sender |",
                 "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        base = n / median(seconds[("sqlite", 1)]) if ("sqlite", 1) in seconds else None
        for (name, senders), runs in seconds.items():
            secs = median(runs)
            rate = n / secs
            ratio = f"{rate / base:.2f}" if base else "-"
            vs_one = (f"{median(seconds[(name, 1)]) / secs:.2f}" if senders > 1 else "-")
            lines.append(f"| {name} | {n:,} | {senders} | {secs:.2f} | {rate:,.0f} | {ratio} |"
                         f" {vs_one} |")
        lines.append("")
        lines.append("Every run (seconds): " + "; ".join(
            f"{name} x{senders}: " + ", ".join(f"{r:.2f}" for r in runs)
            for (name, senders), runs in seconds.items()))
        return lines


def two_senders(target: str, env: dict[str, str], n: int) -> float:
    """Two `send_all` processes started together on one send: seconds from the first one's
    start of send_all to the last one's end (so, like one sender's, without starting Python
    and rendering the issue)."""
    make_db(target, n)
    children = [subprocess.Popen([sys.executable, __file__, "send-all"], env=env,
                                 stdout=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for child in children:
        out, _ = child.communicate(timeout=1800)
        results.append(json.loads(out.strip().splitlines()[-1]))
    sent = sum(r["sent"] for r in results)
    assert sent == n, sent
    return max(r["ended"] for r in results) - min(r["began"] for r in results)


def bench_smtp(work: Path, repeats: int, n: int) -> list[str]:
    if not (Path(SINK).exists() and Path(SOURCE).exists()):
        return [f"(skipped: {SINK} / {SOURCE} not installed: apt-get install postfix)"]
    project = make_project(work / "smtp")
    port = free_port()
    sink = subprocess.Popen([SINK, "-u", "nobody", f"127.0.0.1:{port}", "1024"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        base = child_env(project, NEWSLETTER_PROVIDER="smtp",
                         SMTP_URL=f"smtp://127.0.0.1:{port}")
        size = run_child("message-size", base)["bytes"]
        lines = [f"Message: the seed issue, {size / 1024:.0f} KB as sent.", "",
                 "| way | connections | messages | seconds (median) | messages/s | "
                 "messages per CPU-second | peak RSS |",
                 "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for connections in ("1", "4"):
            env = {**base, "NEWSLETTER_CONNECTIONS": connections}
            runs, secs, cpu = send_all_runs(project, env, n, repeats)
            lines.append(f"| send_all (serialise once, fill per recipient, ledger) | "
                         f"{connections} | {n:,} | {secs:.2f} | {n / secs:,.0f} | "
                         f"{n / cpu:,.0f} | {max(r['maxrss_mb'] for r in runs):.0f} MB |")
        make_db(project / "bench.db", 2000)
        naive = [run_child("naive-smtp", base, "2000", "127.0.0.1", str(port))
                 for _ in range(repeats)]
        rate = median([r["rate"] for r in naive])
        lines.append(f"| naive: new connection + EmailMessage per message (2,000, "
                     f"extrapolated) | 1 per message | {n:,} | {n / rate:.2f} | {rate:,.0f} | - | "
                     f"{max(r['maxrss_mb'] for r in naive):.0f} MB |")
        for sessions in ("1", "4"):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                subprocess.run([SOURCE, "-s", sessions, "-m", str(n), "-l", str(size),
                                "-f", "newsletter@example.org", "-t", "reader@example.org",
                                f"127.0.0.1:{port}"], check=True, timeout=600,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times.append(time.perf_counter() - start)
            secs = median(times)
            lines.append(f"| postfix smtp-source (-l {size}) | {sessions} | {n:,} | "
                         f"{secs:.2f} | {n / secs:,.0f} | - | - |")
        return lines
    finally:
        sink.terminate()
        sink.wait(timeout=10)


def main(argv: list[str]) -> None:
    modes = {"send-all": child_send_all, "naive-sendgrid": child_naive_sendgrid,
             "bare-sendgrid": child_bare_sendgrid,
             "naive-smtp": child_naive_smtp, "serve-202": serve_202,
             "message-size": child_message_size}
    if argv and argv[0] in modes:
        modes[argv[0]](*argv[1:])
        return
    import argparse

    parser = argparse.ArgumentParser(
        prog="bench/send.py", description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: .venv/bin/python bench/send.py --only sendgrid --repeats 3")
    parser.add_argument("--quick", action="store_true", help="one run of each (--repeats 1)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--only", choices=("sendgrid", "smtp"), help="one provider only")
    parser.add_argument("--db", help="compare databases instead: a comma-separated list of "
                        "sqlite, postgresql (a throwaway local cluster) or postgresql:// URLs,"
                        " e.g. --db sqlite,postgresql")
    parser.add_argument("--latency", type=float, default=0, metavar="MS",
                        help="with --db: the local SendGrid endpoint answers each request after"
                        " MS milliseconds (default 0: the database and the sender's CPU alone)")
    parser.add_argument("--sizes", default="10000,100000",
                        help="SendGrid subscriber counts, comma-separated (default 10000,100000)")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else max(1, args.repeats)
    sizes = tuple(int(n) for n in args.sizes.split(","))
    machine = (f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
               f"SQLite {__import__('sqlite3').sqlite_version}")
    with tempfile.TemporaryDirectory(prefix="bench-send-") as tmp:
        work = Path(tmp)
        print(f"Machine: {machine}; median of {repeats}\n")
        if args.db:
            print(f"### SendGrid path at {max(sizes):,} subscribers by database"
                  f"{f' (endpoint latency {args.latency:g} ms)' if args.latency else ''}\n")
            for line in bench_backends(work, repeats, max(sizes), args.db.split(","),
                                       args.latency):
                print(line, flush=True)
            return
        if args.only in (None, "sendgrid"):
            print("### SendGrid provider to a local 202 endpoint\n")
            for line in bench_sendgrid(work, repeats, sizes):
                print(line, flush=True)
        if args.only in (None, "smtp"):
            print("\n### SMTP to postfix smtp-sink\n")
            for line in bench_smtp(work, repeats, 20_000):
                print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Benchmark of `subscribers import` (not a test): `.venv/bin/python bench/import.py [N...]`.

Writes a Mailchimp-style export of N rows (default 10,000, 100,000 and 1,000,000; 1 in 50
unsubscribed rows would be in another file, so here every row is subscribed, with names,
opt-in and confirmation times and IPs), then imports it into an empty SQLite database in a
fresh subprocess, which reports its wall and CPU time and peak memory (ru_maxrss); on a
shared machine the CPU time is the steadier figure. Flat memory means
the peak does not grow with N. Prints Markdown.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEADER = ("Email Address,First Name,Last Name,Address,Phone Number,Birthday,MEMBER_RATING,"
          "OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,"
          "TIMEZONE,CC,REGION,LAST_CHANGED,LEID,EUID,NOTES,TAGS\r\n")


def write_export(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for i in range(n):
            out.write(f"reader{i}@example.org,Reader,Number {i},,,,2,2019-03-12 14:22:01,"
                      f"203.0.113.{i % 250},2019-03-12 14:25:40,203.0.113.{i % 250},,,,,,CA,"
                      f"ON,2021-06-01 09:00:00,{i},e{i:09x},,\r\n")


def child(csv_path: str, db_path: str) -> None:
    from newsletter.store import open_store
    from newsletter.subscribers.importing import import_csv

    with open_store(db_path) as store:
        start, cpu = time.perf_counter(), time.process_time()
        summary = import_csv(store, csv_path)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        count = store.subscribers.counts()["active"]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": peak_kb / 1024,
                      "added": summary.added, "active": count}))


def main(sizes: list[int]) -> None:
    print("| rows | import, wall (s) | CPU (s) | rows/s | peak memory (MB) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            csv_path = Path(tmp) / f"export_{n}.csv"
            db_path = Path(tmp) / f"bench_{n}.db"
            write_export(csv_path, n)
            out = subprocess.run([sys.executable, __file__, "--child", str(csv_path),
                                  str(db_path)], check=True, capture_output=True, text=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            assert result["added"] == result["active"] == n, result
            print(f"| {n:,} | {result['seconds']:.1f} | {result['cpu']:.1f} "
                  f"| {n / result['seconds']:,.0f} "
                  f"| {result['peak_mb']:.0f} |", flush=True)
            csv_path.unlink()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] in (["-h"], ["--help"]):
        print(__doc__)
    else:
        main([int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000])

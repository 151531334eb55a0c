"""A throwaway PostgreSQL cluster for tests: `initdb` and `pg_ctl` in a temporary folder.

    bindir = find_bindir()                       # None: no PostgreSQL installed
    with Cluster.start(bindir) as cluster:
        cluster.url                              # postgresql://newsletter:...@127.0.0.1:PORT/postgres
        with cluster.database() as url:          # a fresh empty database, dropped afterwards
            ...

The server listens on 127.0.0.1 on a free port and on a unix socket inside the folder, with a
password-authenticated (scram-sha-256) superuser. PostgreSQL refuses to run as root, so as root
the cluster belongs to a system user (`newsletter-test`, created with `useradd` when missing)
and every server binary runs through `runuser`. Durability is off (`fsync=off`): the cluster
lives only as long as the test session, and a crash of the machine loses nothing of value.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

SUPERUSER = "newsletter"
TEST_USER = "newsletter-test"  # owns the cluster when the tests run as root
_NEEDED = ("initdb", "pg_ctl", "postgres")
_DEBIAN = Path("/usr/lib/postgresql")


def find_bindir() -> Path | None:
    """The folder with initdb, pg_ctl and postgres: PATH first (where `pg_config` or a
    hand-built server put them), then Debian's /usr/lib/postgresql/<version>/bin, newest
    version first. None when PostgreSQL is not installed."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    if _DEBIAN.is_dir():
        versions = [p for p in _DEBIAN.iterdir() if re.fullmatch(r"\d+(\.\d+)?", p.name)]
        versions.sort(key=lambda p: [int(n) for n in p.name.split(".")], reverse=True)
        candidates += [p / "bin" for p in versions]
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in _NEEDED):
            return folder
    return None


def missing_reason() -> str:
    return ("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in "
            f"{_DEBIAN}/<version>/bin; Debian: apt-get install postgresql")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_user(name: str) -> pwd.struct_passwd:
    """The system user that owns the cluster, created when missing (root only)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    done = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--user-group", name],
        capture_output=True, text=True, check=False)
    try:  # exit 9: another test process created it a moment ago
        return pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(f"could not create the user {name}: {done.stderr.strip()}") from None


@dataclass
class Cluster:
    bindir: Path
    folder: Path
    port: int
    password: str
    run_as: str | None  # the user that runs the binaries (None: the current user)

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    @property
    def socket_dir(self) -> Path:
        return self.folder / "socket"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    # -- life cycle ---------------------------------------------------------------------
    @classmethod
    @contextmanager
    def start(cls, bindir: Path, *, attempts: int = 3, durable: bool = False
              ) -> Iterator[Cluster]:
        """initdb, start, yield; then stop (`-m immediate`) and remove the folder.
        `durable`: fsync and synchronous commits on, as on a real server (benchmarks)."""
        run_as = None
        owner = None
        if os.geteuid() == 0:
            owner = _ensure_user(TEST_USER)
            run_as = TEST_USER
        # Not under pytest's tmp_path: that is private to root (0700), and the server's user
        # must be able to reach its folder.
        folder = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
        cluster = cls(bindir, folder, 0, secrets.token_urlsafe(18), run_as)
        try:
            cluster.socket_dir.mkdir()
            if owner is not None:
                for path in (folder, cluster.socket_dir):
                    os.chown(path, owner.pw_uid, owner.pw_gid)
            cluster._initdb(owner)
            cluster._start(attempts, durable)
            try:
                yield cluster
            finally:
                cluster._run("pg_ctl", "-D", str(cluster.data), "-m", "immediate", "-w",
                             "stop", check=False)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _initdb(self, owner: pwd.struct_passwd | None) -> None:
        pwfile = self.folder / "pwfile"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        pwfile.chmod(0o600)
        if owner is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        try:
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
                      "--auth=scram-sha-256", "--encoding=UTF8", "--no-locale", "--no-sync")
        finally:
            pwfile.unlink()

    def _start(self, attempts: int, durable: bool = False) -> None:
        """Start on a free port; another process may take that port between the probe and
        the server's bind, so a failed start is retried on a new one."""
        for attempt in range(attempts):
            self.port = free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                       f"-c unix_socket_directories={self.socket_dir} "
                       + ("" if durable else
                          "-c fsync=off -c synchronous_commit=off -c full_page_writes=off ")
                       + "-c max_connections=200")
            done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w",
                             "-t", "60", "-o", options, "start", check=False)
            if done.returncode == 0:
                return
            if attempt == attempts - 1:
                raise RuntimeError(f"PostgreSQL did not start (pg_ctl exit {done.returncode}):"
                                   f"\n{done.stdout}{done.stderr}\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _run(self, program: str, *args: str, check: bool = True
             ) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / program), *args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        # A small known environment: the cluster must not pick up PG* settings of the shell.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.folder,
                              env=env, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{program} failed (exit {done.returncode}):\n"
                               f"{done.stdout}{done.stderr}")
        return done

    # -- databases ----------------------------------------------------------------------
    @contextmanager
    def database(self) -> Iterator[str]:
        """A fresh empty database; yields its URL and drops it afterwards (closing any
        connection a test left open)."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield self.url_for(name)
        finally:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                             .format(sql.Identifier(name)))


def emptied(url: str) -> str:
    """The newsletter's tables of a benchmark's database at `url` emptied (made first if
    needed); returns the URL."""
    from newsletter.store import open_store

    open_store(url).close()  # migrated
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE subscribers, sends, test_sends, events RESTART IDENTITY")
    return url

"""The package as a user installs it: a wheel in a fresh virtualenv outside the repository,
then a newsletter started from nothing with `init` and every command run there.

The wheel is built from a copy of the sources (so nothing is written into the repository),
installed without its dependencies into a new virtualenv, which borrows the dependencies of
the interpreter running the tests through a path entry placed after its own site-packages:
no network, and the `newsletter` it runs is the wheel's, never this checkout (checked).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list, cwd: Path, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEWSLETTER_", "SENDGRID_", "SMTP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), NO_PROXY="127.0.0.1,localhost", PYTHONNOUSERSITE="1")
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh virtualenv with the built wheel installed."""
    work = tmp_path_factory.mktemp("install")
    env = _clean_env(work)
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "newsletter", source / "newsletter",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = work / "wheels"
    # Built as pip builds it for a user: in an isolated environment with the build backend
    # pyproject.toml asks for (from the package index), not whatever this venv holds.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", wheels,
          source], cwd=work, env=env, timeout=300)
    wheel = next(wheels.glob("newsletter-*.whl"))

    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=work, env=env)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
          "--no-index", wheel], cwd=work, env=env, timeout=300)
    # The dependencies: the running interpreter's site-packages, after the venv's own.
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=work, env=env).stdout.strip())
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    where = _run([python, "-c", "import newsletter; print(newsletter.__file__)"],
                 cwd=work, env=env).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    return venv / "bin"


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_new_newsletter_runs_every_command(installed: Path, tmp_path: Path):
    newsletter = installed / "newsletter"
    assert newsletter.exists()
    env = _clean_env(tmp_path)
    env["PATH"] = f"{installed}{os.pathsep}{env.get('PATH', '')}"
    folder = tmp_path / "acme-news"

    out = _run([newsletter, "init", folder, "--yes", "--name", "Acme News"], tmp_path, env)
    assert "newsletter new" in out.stdout
    assert not (folder / "templates").exists()
    today = dt.date.today()  # not a future issue: the archive leaves those out
    _run([newsletter, "new", "--date", today.isoformat()], folder, env)
    slug = f"{today:%Y-%m}"
    issue = folder / "issues" / f"{slug}.yaml"
    assert issue.exists()
    out = _run([newsletter, "build", issue], folder, env)
    html = (folder / "build" / f"{slug}.html").read_text(encoding="utf-8")
    assert "Acme News" in html and "<!doctype html>" in html.lower()
    assert (folder / "build" / f"{slug}.txt").read_text(encoding="utf-8").strip()
    out = _run([newsletter, "send", issue, "--test"], folder, env)
    sent = list((folder / "outbox").rglob("*.eml"))
    assert len(sent) == 1 and b"Subject: [TEST] Acme News" in sent[0].read_bytes()
    out = _run([newsletter, "archive"], folder, env)
    assert (folder / "site" / "index.html").exists()
    assert (folder / "site" / f"{slug}.html").exists()

    port = _free_port()
    server = subprocess.Popen([str(newsletter), "serve", "--host", "127.0.0.1", "--port",
                               str(port)], cwd=folder, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while _get_or_none(base + "/healthz") is None:
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        assert _get(base + "/") == 200
        assert _get(base + "/subscribe") == 200
        assert _get(base + "/unsubscribe?t=bad") == 400
        assert _get(base + "/confirm?t=bad") == 400
        assert _get(base + "/no-such-page") == 404
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert "Traceback" not in err and " 500 " not in err, err


def _get_or_none(url: str) -> int | None:
    try:
        return _get(url)
    except OSError:
        return None

"""Benchmark of rendering and building an issue, against the Node toolchain (mjml + juice).

    .venv/bin/python bench/build.py            # print the results
    .venv/bin/python bench/build.py --write    # also replace "## Build" in docs/benchmarks.md
    .venv/bin/python bench/build.py --no-node  # skip the npm install and the Node side

Measures, as medians:
  - render_issue (HTML + text, in process) for the seed issue and a synthetic issue with
    3 featured and 40 "more" stories, with a breakdown per stage;
  - the whole `newsletter build` command (a fresh Python process each run);
  - on the same MJML documents: node `mjml2html` per render and `juice` per inline (a small
    Node script looping in one process), and the node `mjml` CLI per run. npm installs
    `mjml` and `juice` into a temporary folder; if npm fails, that part is skipped with a note.
Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEED = ROOT / "issues" / "2011-05.yaml"

NODE_SCRIPT = r"""
const fs = require('fs');
const mjml2html = require('mjml');
const juice = require('juice');
const [file, runs] = [process.argv[2], parseInt(process.argv[3], 10)];
const source = fs.readFileSync(file, 'utf8');
const median = xs => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
(async () => {
  const render = async () => {
    const out = await Promise.resolve(mjml2html(source, { validationLevel: 'soft' }));
    return out.html;
  };
  let html = await render();
  juice(html);                      // warm up
  const tm = [], tj = [];
  for (let i = 0; i < runs; i++) {
    let t = process.hrtime.bigint();
    html = await render();
    tm.push(Number(process.hrtime.bigint() - t) / 1e6);
    t = process.hrtime.bigint();
    juice(html);
    tj.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const versions = { mjml: require('mjml/package.json').version,
                     juice: require('juice/package.json').version, node: process.version };
  console.log(JSON.stringify({ mjml_ms: median(tm), juice_ms: median(tj), bytes: html.length,
                               versions }));
})();
"""


def median_ms(fn, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def synthetic_issue_data() -> dict:
    """3 featured stories (the seed's body each) and 40 "more" stories."""
    from ruamel.yaml import YAML

    seed = YAML(typ="safe").load(SEED.read_text(encoding="utf-8"))
    body = seed["featured"][0]["body"]
    featured = [{"title": f"Featured story {n}: Talking Mentoring", "body": body,
                 "url": f"https://example.org/featured-{n}", "date": "2011-05-18",
                 "author": "Maytree", "cta": "Read the full story"} for n in range(1, 4)]
    more = [{"title": f"More story {n}: cities and migration",
             "url": f"https://example.org/more-{n}?id={n}",
             "summary": ("A teaser long enough to be shortened at a word boundary, about "
                         "how cities welcome newcomers and what they learn from each other "
                         "along the way, told by the people who do the work.")}
            for n in range(1, 41)]
    return {"subject": "Synthetic issue: 3 featured, 40 more", "date": "2011-05-18",
            "preheader": "A large issue for the benchmark.", "featured": featured,
            "more": more, "events": [{"title": "A webinar", "date": "2011-06-14",
                                      "url": "https://example.org/webinar",
                                      "location": "Online"}]}


def bench_in_process(issue, settings, runs: int) -> dict:
    from newsletter.inline import inline_css
    from newsletter.render import mjml_to_html, render_issue, render_mjml, render_text

    mjml = render_mjml(issue, settings)
    raw = mjml_to_html(mjml)
    return {
        "render_issue": median_ms(lambda: render_issue(issue, settings), runs),
        "jinja_mjml": median_ms(lambda: render_mjml(issue, settings), runs),
        "mjml_python": median_ms(lambda: mjml_to_html(mjml), runs),
        "premailer": median_ms(lambda: inline_css(raw), runs),
        "text": median_ms(lambda: render_text(issue, settings), runs),
        "html_kb": len(render_issue(issue, settings).html.encode()) / 1024,
        "mjml": mjml,
    }


def bench_command(argv: list[str], runs: int, cwd: Path, env: dict | None = None) -> float:
    def run():
        subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return median_ms(run, runs, warmup=1)


def bench_node(mjml_docs: dict[str, str], runs: int, cli_runs: int, tmp: Path) -> dict | str:
    npm = shutil.which("npm")
    node = shutil.which("node")
    if not npm or not node:
        return "skipped: npm/node not found"
    folder = tmp / "node"
    folder.mkdir()
    install = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "mjml", "juice"],
        cwd=folder, capture_output=True, text=True, timeout=600)
    if install.returncode != 0:
        return f"skipped: npm install failed ({install.stderr.strip().splitlines()[-1:]})"
    (folder / "bench.js").write_text(NODE_SCRIPT, encoding="utf-8")
    results: dict = {}
    cli = folder / "node_modules" / ".bin" / "mjml"
    for name, source in mjml_docs.items():
        doc = folder / f"{name}.mjml"
        doc.write_text(source, encoding="utf-8")
        out = subprocess.run([node, "bench.js", doc.name, str(runs)], cwd=folder,
                             capture_output=True, text=True, timeout=600, check=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        results[name]["cli_ms"] = bench_command(
            [str(cli), doc.name, "-o", f"{name}.html"], cli_runs, folder)
    return results


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"`nproc` {len(os.sched_getaffinity(0))}, {model}, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}, "
            f"load average {load} when it finished")


def report(py: dict, build: dict, node: dict | str, runs: int, build_runs: int) -> str:
    lines = [
        "## Build",
        "",
        f"Measured with `.venv/bin/python bench/build.py` on {time.strftime('%Y-%m-%d')}: "
        f"{machine()}. Medians of {runs} renders in one process and of {build_runs} runs of "
        "each command (a shared machine: expect noise).",
        "",
        "| issue | HTML | `render_issue` (HTML + text) | Jinja -> MJML | mjml-python | "
        "premailer | text | `newsletter build` (whole command) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in py.items():
        lines.append(
            f"| {name} | {r['html_kb']:.1f} KB | **{r['render_issue']:.1f} ms** | "
            f"{r['jinja_mjml']:.1f} ms | {r['mjml_python']:.2f} ms | {r['premailer']:.1f} ms | "
            f"{r['text']:.1f} ms | **{build[name]:.0f} ms** |")
    lines.append("")
    if isinstance(node, str):
        lines.append(f"Node toolchain: {node}.")
    else:
        versions = next(iter(node.values()))["versions"]
        lines += [
            f"Same MJML through Node {versions['node']}, npm `mjml` {versions['mjml']} and "
            f"`juice` {versions['juice']} (installed by the bench into a temporary folder):",
            "",
            "| issue | node `mjml2html` | `juice` | mjml2html + juice vs `render_issue` | "
            "node `mjml` CLI (per run) | CLI vs `newsletter build` |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, r in node.items():
            both = r["mjml_ms"] + r["juice_ms"]
            lines.append(
                f"| {name} | {r['mjml_ms']:.1f} ms | {r['juice_ms']:.1f} ms | "
                f"{both:.1f} ms vs {py[name]['render_issue']:.1f} ms: "
                f"**{both / py[name]['render_issue']:.1f}x** | {r['cli_ms']:.0f} ms | "
                f"{r['cli_ms']:.0f} ms vs {build[name]:.0f} ms: "
                f"**{r['cli_ms'] / build[name]:.2f}x** |")
        lines.append("")
        lines.append("Ratios above 1 mean the Python pipeline is faster. The Node side renders "
                     "HTML only; `render_issue` also renders the plain-text part.")
    seed_ms = py["seed"]["render_issue"]
    lines += [
        "",
        "Targets (issue 2): the seed issue in process under 15 ms "
        f"({'met' if seed_ms < 15 else 'NOT met'}: {seed_ms:.1f} ms) and faster than node "
        "mjml + juice; the whole `newsletter build` under 0.45 s "
        f"({'met' if build['seed'] < 450 else 'NOT met'}: {build['seed'] / 1000:.2f} s) and "
        "faster than the node `mjml` CLI alone.",
        "",
        "Where the time goes in a fresh `newsletter build`: Python start-up and imports (click, "
        "pydantic, ruamel.yaml, markdown-it, Jinja2, premailer with cssutils and lxml), then "
        "premailer's first parse of the style sheets (its cssutils results are cached for the "
        "rest of the process). Jinja keeps compiled templates between runs "
        "(FileSystemBytecodeCache); premailer's re-validation of `style` attributes, which "
        "only logs, is switched off (newsletter/inline.py).",
        "",
    ]
    return "\n".join(lines)


def write_section(text: str, path: Path) -> None:
    """Replace (or append) the `## Build` section of docs/benchmarks.md, leaving the others."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    lines = old.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "## Build"), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        new = "\n".join(lines[:start]) + ("\n" if start else "") + text + (
            "\n" + "\n".join(lines[end:]) + "\n" if end < len(lines) else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50, help="renders per in-process median")
    ap.add_argument("--build-runs", type=int, default=15, help="runs per command median")
    ap.add_argument("--no-node", action="store_true", help="skip the Node toolchain")
    ap.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    opts = ap.parse_args()

    from newsletter.config import load_settings
    from newsletter.issue import issue_from_data, load_issue

    settings = load_settings(ROOT / "newsletter.toml")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        synthetic = tmp / "synthetic.yaml"  # JSON is YAML
        synthetic.write_text(json.dumps(synthetic_issue_data(), ensure_ascii=False),
                             encoding="utf-8")
        issues = {"seed": SEED, "synthetic": synthetic}
        py = {}
        for name, path in issues.items():
            issue = load_issue(path) if name == "seed" else issue_from_data(
                json.loads(path.read_text(encoding="utf-8")), path)
            py[name] = bench_in_process(issue, settings, opts.runs)
            print(f"{name}: render_issue {py[name]['render_issue']:.1f} ms", flush=True)

        env = {**os.environ, "NEWSLETTER_CONFIG": str(ROOT / "newsletter.toml"),
               "PYTHONPATH": str(ROOT)}
        build = {}
        for name, path in issues.items():
            build[name] = bench_command(
                [sys.executable, "-m", "newsletter", "build", str(path), "--out",
                 str(tmp / "build")], opts.build_runs, ROOT, env)
            print(f"{name}: newsletter build {build[name]:.0f} ms", flush=True)

        node: dict | str = "skipped (--no-node)"
        if not opts.no_node:
            try:
                node = bench_node({n: r["mjml"] for n, r in py.items()}, opts.runs,
                                  max(5, opts.build_runs // 2), tmp)
            except (subprocess.SubprocessError, OSError, ValueError) as exc:
                node = f"skipped: {exc}"
        text = report(py, build, node, opts.runs, opts.build_runs)
    print()
    print(text)
    if opts.write:
        write_section(text, ROOT / "docs" / "benchmarks.md")
        print("updated docs/benchmarks.md")


if __name__ == "__main__":
    main()

"""The layering rules of docs/architecture.md, checked on the source so they stay true."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "newsletter"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's own modules that `path` imports at module level (what makes a cycle)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n in modules and n.startswith("newsletter")}


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    # A package's __init__ importing its own submodules is how packages work; a cycle is a
    # module reaching itself through others.
    for name in graph:
        graph[name] = {dep for dep in graph[name] if not name.startswith(dep + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_only_the_cli_imports_click() -> None:
    offenders = [str(path.relative_to(PACKAGE.parent)) for name, path in _modules().items()
                 if not name.startswith("newsletter.cli")
                 and re.search(r"^\s*(import click|from click\b)", path.read_text(), re.M)]
    assert offenders == []


_SQL = re.compile(r"""["'](?:SELECT|INSERT|UPDATE|DELETE|CREATE TABLE|ALTER TABLE)\s""")


def test_sql_lives_in_the_store() -> None:
    offenders = [str(path.relative_to(PACKAGE.parent)) for name, path in _modules().items()
                 if not name.startswith("newsletter.store") and _SQL.search(path.read_text())]
    assert offenders == []


def test_library_code_never_writes_the_environment_or_sys_modules() -> None:
    bad = re.compile(r"os\.environ\[[^]]+\]\s*=|os\.environ\.(?:update|setdefault|pop)\(|"
                     r"sys\.modules\[[^]]+\]\s*=|os\.putenv\(")
    offenders = [str(path.relative_to(PACKAGE.parent)) for path in _modules().values()
                 if bad.search(path.read_text())]
    assert offenders == []


def test_provider_knowledge_stays_in_its_provider() -> None:
    """Outside deliver/providers/ (help texts in cli/ aside) no code names SendGrid's or the
    SMTP provider's settings; comments and the one migration that converts old SendGrid rows
    may mention it."""
    names = re.compile(r"SENDGRID_|SMTP_URL|sg_event_id|\"sendgrid\"|'sendgrid'")
    offenders = []
    for name, path in _modules().items():
        if name.startswith(("newsletter.deliver.providers", "newsletter.cli")):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if names.search(code):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    # the migrations that convert rows written before events were neutral
    assert [o for o in offenders if "/store/" not in o] == []


def test_one_template_factory() -> None:
    """Every Jinja environment comes from compose/templates.py (project overrides, filters)."""
    offenders = [str(path.relative_to(PACKAGE.parent)) for name, path in _modules().items()
                 if name != "newsletter.compose.templates"
                 and re.search(r"\bEnvironment\(", path.read_text())]
    assert offenders == []

"""The core's rule (orchestrator/README.md): no module of `orchestrator/` imports Flask, Celery or the
edges built on them (`api/`, `workers/`, the composition root `orchestrator_cli/`), not even inside a
function. Read from the source, so an import that only a rarely used command runs is caught too."""

from __future__ import annotations

import ast
from pathlib import Path

import orchestrator

CORE = Path(orchestrator.__file__).parent
FORBIDDEN = ("flask", "celery", "kombu", "billiard", "api", "workers", "orchestrator_cli")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_the_core_imports_neither_flask_nor_celery_nor_its_edges() -> None:
    modules = [p for p in CORE.rglob("*.py") if "migrations" not in p.relative_to(CORE).parts]
    assert len(modules) > 40  # the walk found the package
    offending = {
        f"{path.relative_to(CORE)}: {name}"
        for path in modules
        for name in _imports(path)
        if name.split(".")[0] in FORBIDDEN
    }
    assert offending == set()

"""Imports flow one way (see STYLE.md); this reads each module's imports with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "timerd"

# module -> timerd modules it must NOT import
FORBIDDEN = {
    "models": {"*"},
    "errors": {"*"},
    "clock": {"*"},
    "config": {"*"},
    "validation": {"api", "service", "store", "daemon", "cli", "delivery", "firing"},
    "firing": {"api", "service", "daemon", "cli"},
    "retry": {"store", "firing", "api", "service", "daemon", "cli"},
    "delivery": {"store", "firing", "api", "service", "daemon", "cli"},
    "store": {"api", "service", "delivery", "firing", "daemon", "cli"},
    "service": {"api", "daemon", "cli"},
    "api": {"store.sqlite", "firing", "delivery", "daemon", "cli"},
    "client": {"store", "service", "api", "daemon"},
}
ALLOWED_FOR_LEAVES = {"errors"}  # config may raise ConfigError; models may not import at all


def timerd_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("timerd"):
            found.add(node.module.removeprefix("timerd").lstrip("."))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("timerd"):
                    found.add(alias.name.removeprefix("timerd").lstrip("."))
    return {name for name in found if name}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_imports_flow_one_way(module: str) -> None:
    path = SRC / f"{module}.py"
    if not path.exists():
        path = SRC / module / "__init__.py"
    assert path.exists(), f"no module {module}: keep FORBIDDEN in step with the package"
    files = [path] if path.name != "__init__.py" else sorted(path.parent.glob("*.py"))
    imported = set().union(*(timerd_imports(f) for f in files))
    forbidden = FORBIDDEN[module]
    if forbidden == {"*"}:
        bad = {name for name in imported if name not in ALLOWED_FOR_LEAVES or module == "models"}
        bad -= {"errors"} if module != "models" else set()
        assert not bad, f"{module} imports {bad}"
        return
    bad = {name for name in imported for f in forbidden if name == f or name.startswith(f + ".")}
    assert not bad, f"{module} imports {bad}"

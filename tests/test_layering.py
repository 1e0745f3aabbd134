"""Imports flow one way, along a timer's way through the daemon (STYLE.md, issue 18).

Every module under src/timerd is read with `ast`, every import form counted (`import
timerd.x`, `from timerd.x import y`, `from timerd import x`, relative imports, and imports
inside functions or `if TYPE_CHECKING:` blocks), and each must point down the layers:

    cli -> daemon -> api -> service -> firing -> delivery | store -> core

delivery and store are siblings: neither imports the other (delivery returns outcomes and
records nothing); the API reaches neither them nor the firing path, only the service. Core
modules import only other core modules, and fewer where the table below says so. Inside one
package, modules import each other freely but without a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "timerd"

LAYERS = {
    "__main__": 7,
    "cli": 6,
    "daemon": 5,
    "api": 4,
    "service": 3,
    "firing": 2,
    "delivery": 1,
    "store": 1,
    "core": 0,
}
CORE = {"__init__", "models", "errors", "clock", "config", "cursor", "validation", "metrics"}
CORE |= {"metrics_summary", "hostnames"}
CORE_ALLOWED = {
    "__init__": set(),
    "models": set(),
    "errors": set(),
    "clock": set(),
    "config": {"errors"},
    "cursor": {"errors"},
    "validation": {"errors", "models"},
    "metrics": {"models"},
    "metrics_summary": {"models"},
    "hostnames": set(),
}
KEPT_APART = {
    ("delivery", "store"),  # delivery returns outcomes and records nothing
    ("store", "delivery"),
    ("api", "store"),  # handlers call the service; no SQL, no idempotency records
    ("api", "firing"),  # nor the heap
    ("api", "delivery"),  # nor the webhook client
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


SERVICE_STAGE = {"browse"}  # the status page's bounded reads: operations, beside service.py


def stage(module: str) -> str:
    head = module.split(".", maxsplit=1)[0]
    if head in SERVICE_STAGE:
        return "service"
    return "core" if head in CORE else head


def imports_of(path: Path, here: str | None = None) -> set[str]:
    """Return every timerd module `path` (module `here`) imports, by its name under timerd."""
    here = here or module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "timerd"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)]
                absolute = ".".join(["timerd", *base, *([node.module] if node.module else [])])
            else:
                absolute = node.module or ""
            if absolute.split(".")[0] != "timerd":
                continue
            found.add(absolute)
            for alias in node.names:  # `from timerd import models` names a module
                candidate = SRC.joinpath(*absolute.split(".")[1:], alias.name)
                if candidate.with_suffix(".py").exists() or candidate.is_dir():
                    found.add(f"{absolute}.{alias.name}")
    return {name.removeprefix("timerd").lstrip(".") or "__init__" for name in found}


MODULES = sorted(SRC.rglob("*.py"))


def test_every_module_belongs_to_a_stage() -> None:
    unknown = {module_name(p) for p in MODULES if stage(module_name(p)) not in LAYERS}
    assert not unknown, f"modules outside every stage: {unknown}; add their package to LAYERS"


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_imports_point_down_the_layers(path: Path) -> None:
    here = module_name(path)
    here_stage = stage(here)
    bad = []
    for target in imports_of(path):
        there_stage = stage(target)
        if here_stage == "core":
            name = target.split(".")[0]
            if stage(target) != "core" or name not in CORE_ALLOWED[here] | {here}:
                bad.append(target)
        elif there_stage == here_stage:
            continue  # within a package: the cycle test below
        elif (here_stage, there_stage) in KEPT_APART or LAYERS[there_stage] >= LAYERS[here_stage]:
            bad.append(target)
    assert not bad, f"{here} ({here_stage}) must not import {sorted(bad)}"


def test_no_import_cycle_between_modules() -> None:
    graph = {module_name(p): imports_of(p) for p in MODULES}
    known = set(graph)
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node] & known):
            if nxt == node or nxt == node.rpartition(".")[0]:
                continue  # a package's face importing its own modules, or a module its face
            if state.get(nxt) == 1:
                cycle = [*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_checker_sees_every_import_form(tmp_path: Path) -> None:
    """The reader itself: each form of import is found (so the rules above can fail)."""
    sample = SRC / "firing" / "due_loop.py"
    found = imports_of(sample)
    assert "store" in found or any(name.startswith("store") for name in found)
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from timerd import store\n"
        "import timerd.api.routes\n"
        "def f():\n"
        "    from ..service import TimerService\n"
        "    return TimerService\n"
    )
    assert {"store", "api.routes", "service"} <= imports_of(probe, "delivery.probe")

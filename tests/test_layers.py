"""The code's shape: layers only point down, modules and functions stay small, no module name twice."""

from __future__ import annotations

import ast
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "tasks", "trainers", "reports")
LAYERS = {
    "harness.core": 0,
    "tasks": 1,
    "harness.engines": 2,
    "harness.compare": 2,
    "harness.evaluation": 3,
    "trainers": 4,
    "reports": 4,
    "harness.app": 5,
}
"""Each package's layer: a module may import from lower layers and from its own package, nothing else."""


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def _placed(module: str) -> str | None:
    owners = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    return max(owners, key=len) if owners else None


def _package(module: str) -> str:
    owner = _placed(module)
    assert owner is not None, f"{module} has no layer"
    return owner


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return [name for name in names if name.split(".")[0] in PACKAGES]


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in _modules() if m not in PACKAGES and _placed(m) is None]
    assert unplaced == [], "add these packages to LAYERS"


def test_layers_only_point_down() -> None:
    upward = []
    for module, path in _modules().items():
        if module in PACKAGES:
            continue
        own = _package(module)
        for imported in _imports(path):
            target = _package(imported)
            if target != own and LAYERS[target] >= LAYERS[own]:
                upward.append(f"{module} -> {imported}")
    assert upward == []


def test_modules_and_functions_stay_small() -> None:
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in _modules().items()}
    code = {m: n for m, n in sizes.items() if n > 5}  # package markers do not count
    assert median(code.values()) <= 200, sorted(code.items(), key=lambda kv: -kv[1])[:5]
    assert max(code.values()) <= 400, max(code.items(), key=lambda kv: kv[1])
    long = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 60:
                    long.append(f"{module}.{node.name}: {length} lines")
    assert long == []


def test_no_module_name_stands_in_two_packages() -> None:
    names: dict[str, list[str]] = {}
    for module in _modules():
        leaf = module.rsplit(".", 1)[-1]
        if leaf not in ("__init__", "task", "dataset", "scoring", "training") and module not in PACKAGES:
            names.setdefault(leaf, []).append(module)
    assert {leaf: where for leaf, where in names.items() if len(where) > 1} == {}

"""The code's shape: layers only point down, modules and functions stay small, no module name twice."""

from __future__ import annotations

import ast
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("harness", "tasks", "trainers", "reports")
"""The repository's code folders, installed as ``ftbench.harness``, ``ftbench.tasks``, ... (see ``ftbench/``)."""
PACKAGES = tuple(f"ftbench.{folder}" for folder in FOLDERS)
LAYERS = {
    "ftbench.harness.core": 0,
    "ftbench.tasks": 1,
    "ftbench.harness.engines": 2,
    "ftbench.harness.compare": 2,
    "ftbench.harness.leakage": 2,
    "ftbench.harness.evaluation": 3,
    "ftbench.harness.index": 3,  # the results store: the application adds to it, evaluation never does
    "ftbench.trainers": 4,
    "ftbench.reports": 4,
    "ftbench.harness.viewer": 4,  # the store's web viewer
    "ftbench.harness.app": 5,
    "ftbench": 6,
}
"""Each package's floor: a module may import from lower floors and from its own package, nothing else."""


def _modules() -> dict[str, Path]:
    found = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = ".".join(("ftbench", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
            found[name] = path
    found["ftbench"] = ROOT / "ftbench" / "__init__.py"
    return found


def _placed(module: str) -> str | None:
    owners = [p for p in LAYERS if module == p or (p != "ftbench" and module.startswith(p + "."))]
    return max(owners, key=len) if owners else None


def _package(module: str) -> str:
    owner = _placed(module)
    assert owner is not None, f"{module} has no layer"
    return owner


def _imports(path: Path) -> list[str]:
    """The project modules ``path`` imports (at any depth, lazy imports included)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return [name for name in names if name.split(".")[0] in ("ftbench", *FOLDERS)]


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in _modules() if m not in PACKAGES and _placed(m) is None]
    assert unplaced == [], "add these packages to LAYERS"


def test_code_imports_only_through_the_namespace() -> None:
    bare = [f"{m} -> {i}" for m, p in _modules().items() for i in _imports(p) if i.split(".")[0] in FOLDERS]
    assert bare == [], "import these as ftbench.<folder>..."


def test_layers_only_point_down() -> None:
    upward = []
    for module, path in _modules().items():
        if module in PACKAGES or module == "ftbench":
            continue
        own = _package(module)
        for imported in _imports(path):
            target = _package(imported)
            if target != own and LAYERS[target] >= LAYERS[own]:
                upward.append(f"{module} -> {imported}")
    assert upward == []


def test_floors_are_whole_numbers() -> None:
    assert all(isinstance(floor, int) for floor in LAYERS.values())


def _importers(package: str, imported: str) -> list[str]:
    return [
        m for m, p in _modules().items() if m.startswith(package) and any(i.startswith(imported) for i in _imports(p))
    ]


def test_evaluation_only_evaluates_and_the_store_and_statistics_read_no_task_registry() -> None:
    assert _importers("ftbench.harness.evaluation", "ftbench.harness.index") == []
    assert _importers("ftbench.harness.compare", "ftbench.tasks.registry") == []
    assert _importers("ftbench.harness.index", "ftbench.tasks.registry") == []


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

"""The house: imports flow one way, each layer imports only what is below it, every runtime
dependency is declared, and only command modules parse arguments or print."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from lstmknn.engine.devtools.import_graph import ROOT, cycles, graph, imports, project_modules

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CORE = ("lstmknn.engine.config", "lstmknn.engine.errors", "lstmknn.engine.folds", "lstmknn.engine.regime", "lstmknn.engine.fusion",
        "lstmknn.engine.cache", "lstmknn.engine.defaults", "lstmknn.engine.seeding", "lstmknn.engine.walk_forward", "lstmknn.engine.models",
        "lstmknn.engine.feature_set", "lstmknn.engine.pooled", "lstmknn.engine.progress", "lstmknn.engine.runio")
UPPER = ("lstmknn.engine.backtest", "lstmknn.engine.asof", "lstmknn.engine.forecasts", "lstmknn.engine.decisions", "lstmknn.engine.params", "lstmknn.engine.sweep", "lstmknn.engine.paper",
         "lstmknn.engine.cli", "lstmknn.engine.audit", "lstmknn.engine.parallel", "lstmknn.engine.devtools")


def edges_from(prefix: str) -> set[tuple[str, str]]:
    edges, _ = graph()
    return {(a, b) for a, targets in edges.items() if a == prefix or a.startswith(prefix + ".")
            for b in targets}


def test_there_is_no_import_cycle_among_the_projects_modules():
    edges, _ = graph()
    assert cycles(edges) == []


def test_data_imports_nothing_of_ours_outside_data():
    bad = {(a, b) for a, b in edges_from("lstmknn.data") if not b.startswith("lstmknn.data")}
    assert bad == set()


def test_reports_are_pure_and_strategies_import_no_model_code():
    assert {(a, b) for a, b in edges_from("lstmknn.reports") if not b.startswith("lstmknn.reports")} == set()
    allowed = ("lstmknn.strategies",)
    assert {(a, b) for a, b in edges_from("lstmknn.strategies") if not b.startswith(allowed)} == set()


def test_the_forecasting_core_never_imports_the_layers_above_it():
    bad = {(a, b) for prefix in CORE for a, b in edges_from(prefix)
           if b.startswith(UPPER + ("lstmknn.strategies", "lstmknn.reports"))}
    assert bad == set()


def test_every_third_party_import_is_a_declared_dependency():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = " ".join(meta["dependencies"] + sum(meta["optional-dependencies"].values(), []))
    dist = {"sklearn": "scikit-learn", "distributed": "dask", "tomli": "tomli", "yaml": "pyyaml"}
    stdlib = set(sys.stdlib_module_names)
    ours = {"lstmknn", "data", "engine", "strategies", "reports"}
    missing = set()
    for path in project_modules().values():
        for name, _, _ in imports(path):
            root = name.split(".")[0]
            if root in stdlib or root in ours or root == "__future__":
                continue
            if dist.get(root, root) not in declared:
                missing.add(f"{path.relative_to(ROOT)}: {root}")
    assert missing == set()


def test_only_command_modules_parse_arguments_or_print():
    offenders = []
    for mod, path in project_modules().items():
        if mod.startswith(("lstmknn.engine.cli", "lstmknn.engine.devtools")):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{mod}:{node.lineno} print")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                if "argparse" in names:
                    offenders.append(f"{mod}:{node.lineno} argparse")
    assert offenders == []


def test_no_test_module_imports_another_test_module():
    offenders = []
    for path in sorted(Path(ROOT, "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    ("tests.test_", "tests.conftest")):
                offenders.append(f"{path.name}: {node.module}")
    assert offenders == []

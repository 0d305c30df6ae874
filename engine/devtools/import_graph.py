"""Print the project's import graph summary: modules, edges, cycles and function-local imports.

Usage: python -m engine.devtools.import_graph [--dot FILE]
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("data", "engine", "strategies", "reports")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["lstmknn", *parts])  # installed as subpackages of lstmknn


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported module, at module level?, line) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    out: list[tuple[str, bool, int]] = []
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        guarded = id(node) in top or _in_type_checking(tree, node)
        out += [(n, guarded, node.lineno) for n in names]
    return out


def _in_type_checking(tree: ast.Module, node: ast.AST) -> bool:
    for stmt in tree.body:
        if isinstance(stmt, (ast.If, ast.Try)) and any(n is node for n in ast.walk(stmt)):
            return True  # module-level `if TYPE_CHECKING:` / version or optional-import guards
    return False


def graph() -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    """Edges between project modules, and function-local imports (module, target, line)."""
    mods = project_modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    local: list[tuple[str, str, int]] = []
    for m, path in mods.items():
        for name, top, line in imports(path):
            target = name if name in mods else None
            if target is None:
                continue
            if target != m and not m.startswith(target + "."):
                edges[m].add(target)
            if not top:
                local.append((m, target, line))
        for name, top, line in imports(path):
            if not top and not name.startswith("lstmknn.") and (m, name, line) not in local:
                local.append((m, name, line))
    return edges, local


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dot", help="write the graph in Graphviz dot format to this file")
    args = p.parse_args()
    edges, local = graph()
    found = cycles(edges)
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} import edges, "
          f"{len(found)} cycles, {len(local)} function-local imports")
    for c in found:
        print("cycle:", " <-> ".join(c))
    for m, target, line in sorted(local):
        print(f"  local import: {m}:{line} -> {target}")
    if args.dot:
        lines = ["digraph imports {"] + [f'  "{a}" -> "{b}";' for a in sorted(edges)
                                          for b in sorted(edges[a])] + ["}"]
        Path(args.dot).write_text("\n".join(lines) + "\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

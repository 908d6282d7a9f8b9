"""The layout holds: every folder of code is a package, and no package imports, through any chain,
a package that imports it (a package may use the modules of the packages above it: a part may use
its parent's shared pieces, never its siblings in a circle)."""

from __future__ import annotations

import ast
from pathlib import Path

import sdnvirt

ROOT = Path(sdnvirt.__file__).parent


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def package_of(module: str, known: dict[str, Path]) -> str:
    return module if known[module].name == "__init__.py" else module.rpartition(".")[0]


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sdnvirt"):
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.startswith("sdnvirt")}
    return names


def package_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        source = package_of(module, known)
        for name in imports(path) & known.keys():
            target = package_of(name, known)
            related = source.startswith(target + ".") or target.startswith(source + ".") or source == target
            if not related:
                graph.setdefault(source, set()).add(target)
    return graph


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for following in sorted(graph.get(node, ())):
            found = visit(following, path + [node])
            if found:
                return found
        done.add(node)
        return None

    return next((found for node in sorted(graph) if (found := visit(node, []))), None)


def test_every_folder_of_code_is_a_package():
    folders = {path.parent for path in ROOT.rglob("*.py")}
    assert [str(f) for f in sorted(folders) if not (f / "__init__.py").exists()] == []


def test_no_package_imports_a_package_that_imports_it():
    assert cycle_in(package_graph()) is None


def test_the_api_client_never_imports_the_controller():
    known = modules()
    for module, path in known.items():
        if module.startswith("sdnvirt.client"):
            assert not {n for n in imports(path) if n.startswith("sdnvirt.controller")}, module


def test_the_cycle_finder_finds_one():
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": {"c"}}) is None

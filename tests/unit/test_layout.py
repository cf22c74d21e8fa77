"""The package layout: no import cycles inside a package, no borrowing of private names,
modules of one job (small), the independence rule, and the lab kinds behind one interface.

Read with `ast`, never by importing: every `import` and `from … import` counts, wherever it
sits (inside a function too, since that is how a cycle usually hides), and relative imports
are resolved against the importing module.
"""
from __future__ import annotations

import ast
import pathlib
from collections import deque

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ["lab", "fixtures"]
MAX_LINES = {"fixtures": 600}     # lab/calico may mirror libcalico's larger modules
# the kinds of lab: only the registry (fixtures/targets) knows them; the rest use base.Target
TARGET_KINDS = ("fixtures.targets.embedded", "fixtures.targets.inventory")


def modules(package: str, root: pathlib.Path = ROOT) -> dict[str, pathlib.Path]:
    """Dotted module name -> file, for every .py file of the package."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a `from X import …` names (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    # `.` is the package itself for an __init__, the containing package for a module
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, path: pathlib.Path) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import statement in the file.
    `from a import b` yields ("a", "b"); whether b is a submodule is the caller's to decide."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            found.extend((target, alias.name) for alias in node.names)
    return found


def import_graph(package: str, root: pathlib.Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports. `from pkg import sub` is an
    edge to pkg.sub when that is a module, else to pkg.

    Importing a.b.c runs a/__init__ and a/b/__init__ first, so those are edges too, except
    the importing module's own parent packages: they are already running by then, and only
    reading a name from one (`from . import NAME`) depends on how far it has got."""
    mods = modules(package, root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for target, name in imports(mod, path):
            if name and f"{target}.{name}" in mods:
                dep, reads_a_name = f"{target}.{name}", False
            else:
                dep, reads_a_name = target, name is not None
            parts = dep.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                own_parent = mod.startswith(prefix + ".")
                if prefix in mods and prefix != mod and (
                        not own_parent or (prefix == dep and reads_a_name)):
                    graph[mod].add(prefix)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One import cycle, as [a, b, …, a], per group of modules that import each other
    (a strongly connected component): the shortest one through its first module by name."""
    edges = {m: sorted(deps) for m, deps in graph.items()}
    cycles = []
    for group in _components(edges):
        if len(group) < 2:
            continue
        start = min(group)
        # breadth-first from start, inside the group, back to start
        came_from: dict[str, str] = {}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if start in edges[node]:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                cycles.append(path[::-1] + [start])
                break
            for dep in edges[node]:
                if dep in group and dep not in came_from and dep != start:
                    came_from[dep] = node
                    queue.append(dep)
    return sorted(cycles)


def _components(edges: dict[str, list[str]]) -> list[set[str]]:
    """Strongly connected components (Tarjan), iteratively: no recursion limit to hit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, deps = work[-1]
            for dep in deps:
                if dep not in edges:
                    continue
                if dep not in index:
                    index[dep] = low[dep] = len(index)
                    stack.append(dep)
                    on_stack.add(dep)
                    work.append((dep, iter(edges[dep])))
                    break
                if dep in on_stack:
                    low[node] = min(low[node], index[dep])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    groups.append(group)
    return groups


def private_imports(package: str, root: pathlib.Path = ROOT) -> list[str]:
    """`module: from other import _name` for every private name taken from another module."""
    mods = modules(package, root)
    found = []
    for mod, path in mods.items():
        for target, name in imports(mod, path):
            # a private module of the package may be imported; a private name in one may not
            if (name and name.startswith("_") and not name.startswith("__")
                    and target != mod and target.split(".")[0] == package
                    and f"{target}.{name}" not in mods):
                found.append(f"{mod}: from {target} import {name}")
    return sorted(found)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package):
    cycles = find_cycles(import_graph(package))
    assert not cycles, f"import cycles in {package}/:\n  " + "\n  ".join(
        " → ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_private_names_from_other_modules(package):
    found = private_imports(package)
    assert not found, ("private names imported from another module (make them public in "
                       "a shared module instead):\n  " + "\n  ".join(found))


@pytest.mark.parametrize("package", sorted(MAX_LINES))
def test_modules_stay_small(package):
    big = {str(p.relative_to(ROOT)): n for p in modules(package).values()
           if (n := len(p.read_text().splitlines())) > MAX_LINES[package]}
    assert not big, (f"modules over {MAX_LINES[package]} lines (split them, one job a "
                     f"module): {big}")


def _uses(package: str, wanted) -> list[str]:
    return sorted(f"{mod}: {target}" for mod, path in modules(package).items()
                  for target, name in imports(mod, path)
                  if wanted(mod, target if not name else f"{target}.{name}"))


def test_independence_rule():
    """lab/calico enforces Calico's semantics, fixtures/ predicts them: neither imports the other
    (DESIGN.md), so a bug cannot hide by being shared."""
    assert _uses("fixtures", lambda mod, t: t.startswith("lab.calico")) == []
    assert _uses("lab", lambda mod, t: t.split(".")[0] == "fixtures") == []


def test_lab_kinds_only_behind_the_target_interface():
    """Outside fixtures/targets nothing names a kind of lab: one interface, no `if inventory`."""
    assert _uses("fixtures", lambda mod, t: not mod.startswith("fixtures.targets")
                 and t.startswith(TARGET_KINDS)) == []


# -- the checks themselves, on tiny packages written for the purpose -------------------------

def _package(tmp_path: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    for name, text in files.items():
        f = tmp_path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return tmp_path


def test_every_cycle_is_found_even_through_function_local_relative_imports(tmp_path):
    root = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from . import b\n",
        "pkg/b.py": "def f():\n    from .a import thing\n",
        "pkg/c.py": "from pkg.sub import d\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/d.py": "from .. import a\nimport pkg.sub.e\n",
        "pkg/sub/e.py": "from .f import g\n",
        "pkg/sub/f.py": "if True:\n    from pkg.sub import d\n",
    })
    assert find_cycles(import_graph("pkg", root)) == [
        ["pkg.a", "pkg.b", "pkg.a"],
        ["pkg.sub.d", "pkg.sub.e", "pkg.sub.f", "pkg.sub.d"],
    ]


def test_a_submodule_importing_a_sibling_through_its_package_is_no_cycle(tmp_path):
    root = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "from .d import X\n",
        "pkg/sub/d.py": "from pkg.sub import e\nfrom .. import sub\nX = 1\n",
        "pkg/sub/e.py": "",
    })
    assert find_cycles(import_graph("pkg", root)) == []


def test_a_submodule_importing_a_name_of_its_package_that_imports_it_is_a_cycle(tmp_path):
    root = _package(tmp_path, {
        "pkg/__init__.py": "from .d import X\nY = 2\n",
        "pkg/d.py": "from . import Y\nX = 1\n",
    })
    assert find_cycles(import_graph("pkg", root)) == [["pkg", "pkg.d", "pkg"]]


def test_private_names_from_another_module_are_listed(tmp_path):
    root = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from .b import _hidden, public\nfrom . import _private_mod\n",
        "pkg/b.py": "def g():\n    from pkg.a import _x\n",
        "pkg/_private_mod.py": "",
    })
    assert private_imports("pkg", root) == ["pkg.a: from pkg.b import _hidden",
                                            "pkg.b: from pkg.a import _x"]

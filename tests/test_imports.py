"""The package's import graph: no import cycles, and the core (everything but the CLI and the
plotting) never imports the CLI, the plotting or matplotlib when it is imported.

The graph is built from each module's module-level ``import`` / ``from ... import``
statements (those that run when the module is imported: not inside functions, not under
``if TYPE_CHECKING:``), read with ``ast`` from the files that ``pkgutil.walk_packages`` finds.
Importing a submodule also runs its packages' ``__init__``: an edge goes to each such package
that is not already being imported around the importer.
"""
import ast
import pkgutil
import sys
from pathlib import Path

import pytest

import npcae
from conftest import run_python

NOT_CORE = {"npcae.cli", "npcae.plotting", "npcae.__main__"}
FORBIDDEN_IN_CORE = ("npcae.cli", "npcae.plotting", "matplotlib")
HEAVY = ("matplotlib", "npcae.cli", "npcae.plotting", "sklearn", "pandas")


# ------------------------------------------------------------------------------ the graph
def package_modules(name, path):
    """``{module name: (source file, is a package)}`` for the package at ``path``."""
    modules = {name: (Path(path) / "__init__.py", True)}
    for info in pkgutil.walk_packages([str(path)], prefix=name + "."):
        leaf = info.name.rsplit(".", 1)[1]
        folder = Path(info.module_finder.path)
        file = folder / leaf / "__init__.py" if info.ispkg else folder / f"{leaf}.py"
        modules[info.name] = (file, info.ispkg)
    return modules


def _is_type_checking(test):
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def module_level_imports(tree, inside_functions=False):
    """The import statements that run at import time: everywhere but function bodies
    (class bodies, ``if``/``try`` blocks at module level do run) and ``if TYPE_CHECKING:``.
    ``inside_functions=True``: every import statement, the deferred ones too."""
    if inside_functions:
        return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    found = []

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    visit_stmt(stmt)
                continue
            visit_stmt(child)

    def visit_stmt(stmt):
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            found.append(stmt)
        elif not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            visit(stmt)

    visit(tree)
    return found


def _ancestors(name):
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(name, path, inside_functions=False):
    """``(edges, external)`` of the package: ``edges[m]`` is the set of ``(module of the
    package, line)`` that importing ``m`` imports; ``external[m]`` the set of ``(dotted name
    of another distribution's module, line)``. ``inside_functions``: see
    :func:`module_level_imports`."""
    modules = package_modules(name, path)
    edges, external = {}, {}
    for mod, (file, is_pkg) in modules.items():
        here = mod if is_pkg else mod.rsplit(".", 1)[0]
        own = set(_ancestors(mod)) | {mod}
        targets, outside = set(), set()

        def add(target, line, explicit):
            if target.split(".")[0] != name:
                outside.add((target, line))
                return
            if target != mod and (explicit or target not in own):
                targets.add((target, line))
            for parent in _ancestors(target):                 # their __init__ run too
                if parent not in own:
                    targets.add((parent, line))

        tree = ast.parse(file.read_text(), str(file))
        for stmt in module_level_imports(tree, inside_functions):
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    add(alias.name, stmt.lineno, True)
                continue
            if stmt.level:
                base = here.split(".")
                base = base[:len(base) - (stmt.level - 1)]
                base = ".".join(base + ([stmt.module] if stmt.module else []))
            else:
                base = stmt.module
            for alias in stmt.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:                            # from package import submodule
                    add(sub, stmt.lineno, True)
                else:                                         # a name defined in base
                    add(base, stmt.lineno, True)
        edges[mod], external[mod] = targets, outside
    return edges, external


def find_cycle(edges):
    """One import cycle as a list of module names (first == last), or None."""
    state, stack = {}, []

    def dfs(node):
        state[node] = "open"
        stack.append(node)
        for target, _ in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = dfs(target)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = dfs(node)
            if cycle:
                return cycle
    return None


@pytest.fixture(scope="module")
def graph():
    return import_graph("npcae", Path(npcae.__file__).parent)


# ------------------------------------------------------------------------------ the tests
def test_walk_finds_every_module(graph):
    edges, _ = graph
    expected = {"npcae", "npcae.cli", "npcae.plotting", "npcae.io", "npcae.training",
                "npcae._workspace", "npcae._version", "npcae.models", "npcae.models.base",
                "npcae.models.cae", "npcae.datasets", "npcae.datasets.idx",
                "npcae.datasets.mnist", "npcae.datasets.digits", "npcae.datasets.manifolds",
                "npcae.gradcheck", "npcae.gradcheck._engine", "npcae.__main__"}
    assert expected <= set(edges), sorted(expected - set(edges))


def test_no_import_cycles(graph):
    edges, _ = graph
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_cycles_in_the_core_even_through_deferred_imports():
    """Imports inside functions do not run at import time, but a loop through them (such as
    models.base -> training -> models.base, or io -> models -> base -> io) still ties the
    modules into one knot; the core has none. (The CLI imports ``npcae`` itself, whose
    ``__init__`` never imports the CLI.)"""
    edges, _ = import_graph("npcae", Path(npcae.__file__).parent, inside_functions=True)
    core = {m: {(t, line) for t, line in targets if t not in NOT_CORE}
            for m, targets in edges.items() if m not in NOT_CORE}
    cycle = find_cycle(core)
    assert cycle is None, "import cycle through deferred imports: " + " -> ".join(cycle)


def forbidden_imports(edges, external, not_core, forbidden):
    """``"module (line n) imports target"`` for each import of a ``forbidden`` module (or of
    one of its submodules) by a module outside ``not_core``."""
    return [f"{mod} (line {line}) imports {target}"
            for mod in sorted(set(edges) - set(not_core))
            for target, line in sorted(edges[mod] | external[mod])
            if any(target == f or target.startswith(f + ".") for f in forbidden)]


def test_core_never_imports_cli_plotting_or_matplotlib(graph):
    bad = forbidden_imports(*graph, NOT_CORE, FORBIDDEN_IN_CORE)
    assert not bad, "; ".join(bad)


def test_core_imports_numpy_and_the_standard_library_only(graph):
    """The runtime dependency is numpy alone: anything else is imported where it is used."""
    _, external = graph
    bad = [f"{mod} (line {line}) imports {target}"
           for mod in sorted(set(external) - NOT_CORE)
           for target, line in sorted(external[mod])
           if target.split(".")[0] not in sys.stdlib_module_names | {"numpy"}]
    assert not bad, "; ".join(bad)


def test_version_and_workspace_stand_alone(graph):
    """The two modules that broke the models.base <-> training <-> io loop import nothing
    from npcae, and io never imports the models (it is handed the registry)."""
    edges, _ = graph
    assert edges["npcae._version"] == set() and edges["npcae._workspace"] == set()
    assert not {t for t, _ in edges["npcae.io"]} & {"npcae", "npcae.models",
                                                     "npcae.models.base", "npcae.training"}
    assert "npcae.models" not in {t for t, _ in edges["npcae.training"]}


def test_importing_the_core_leaves_the_heavy_modules_out():
    core = ["npcae.models", "npcae.training", "npcae.io", "npcae.datasets", "npcae.gradcheck",
            "npcae.analysis", "npcae.audit", "npcae.penalties", "npcae.layers"]
    code = ("import sys\n"
            "import npcae\n"
            "import npcae.models, npcae.training, npcae.io\n"
            f"first = [m for m in {HEAVY!r} if m in sys.modules]\n"
            f"import {', '.join(core)}\n"
            f"then = [m for m in {HEAVY!r} if m in sys.modules]\n"
            "print(first, then)\n"
            "assert not first and not then, (first, then)\n")
    res = run_python(code)
    assert res.returncode == 0, res.stdout + res.stderr


# ----------------------------------------------------------- the checker itself can fail
def _write_package(root, files):
    pkg = root / "fakepkg"
    pkg.mkdir()
    for name, text in files.items():
        (pkg / name).write_text(text)
    return pkg


def test_checker_finds_a_cycle_and_ignores_imports_inside_functions(tmp_path):
    pkg = _write_package(tmp_path, {
        "__init__.py": "from . import a\n",
        "a.py": "from .b import helper\n\ndef f():\n    from . import c\n",
        "b.py": "import numpy\ntry:\n    from .a import thing\nexcept ImportError:\n"
                "    pass\n\ndef helper():\n    pass\n",
        "c.py": "from . import a\n",                    # c -> a, but a -> c only in a function
        "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n",
    })
    edges, external = import_graph("fakepkg", pkg)
    assert {t for t, _ in edges["fakepkg.a"]} == {"fakepkg.b"}
    assert {t for t, _ in edges["fakepkg.d"]} == set()
    assert external["fakepkg.b"] == {("numpy", 1)}
    assert find_cycle(edges) == ["fakepkg.a", "fakepkg.b", "fakepkg.a"]
    del edges["fakepkg.b"]
    assert find_cycle(edges) is None
    deferred, _ = import_graph("fakepkg", pkg, inside_functions=True)
    assert {t for t, _ in deferred["fakepkg.a"]} == {"fakepkg.b", "fakepkg.c"}
    assert {t for t, _ in deferred["fakepkg.d"]} == {"fakepkg.a"}


def test_checker_finds_forbidden_imports(tmp_path):
    pkg = _write_package(tmp_path, {
        "__init__.py": "", "cli.py": "import matplotlib.pyplot\n", "plotting.py": "",
        "core.py": "import os\nif os.environ.get('X'):\n    import matplotlib.pyplot as plt\n",
        "model.py": "from .plotting import figure\n\ndef save():\n    from . import cli\n",
    })
    edges, external = import_graph("fakepkg", pkg)
    bad = forbidden_imports(edges, external, {"fakepkg.cli", "fakepkg.plotting"},
                            ("fakepkg.cli", "fakepkg.plotting", "matplotlib"))
    assert bad == ["fakepkg.core (line 3) imports matplotlib.pyplot",
                   "fakepkg.model (line 1) imports fakepkg.plotting"]


def test_checker_counts_a_subpackage_init_as_imported(tmp_path):
    pkg = _write_package(tmp_path, {"__init__.py": "", "top.py": "from .sub.leaf import x\n"})
    (pkg / "sub").mkdir()
    (pkg / "sub" / "__init__.py").write_text("from .. import top\n")
    (pkg / "sub" / "leaf.py").write_text("x = 1\n")
    sys.path.insert(0, str(tmp_path))                    # walk_packages imports subpackages
    try:
        edges, _ = import_graph("fakepkg", pkg)
    finally:
        sys.path.remove(str(tmp_path))
        for mod in [m for m in sys.modules if m == "fakepkg" or m.startswith("fakepkg.")]:
            del sys.modules[mod]
    assert {t for t, _ in edges["fakepkg.top"]} == {"fakepkg.sub", "fakepkg.sub.leaf"}
    assert find_cycle(edges) == ["fakepkg.sub", "fakepkg.top", "fakepkg.sub"]

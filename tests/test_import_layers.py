"""The library's modules import each other in layers (no cycle), and the library never imports Streamlit.

Every ``import`` in ``resnet_viz`` counts, wherever it is: at the top, inside a function, under
``if TYPE_CHECKING:``, relative (``from . import x``, ``from ..models import TwinNet``) or absolute. An import of a
module inside ``resnet_viz`` is an edge of the module graph; the graph must have no cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Collection

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "resnet_viz"


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Module name -> its file, for every module of ``package`` (a package is its ``__init__.py``)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_names(module: str, path: Path, modules: Collection[str] = ()) -> set[str]:
    """Every module name ``module`` imports, absolute: for ``from X import y`` both ``X`` and ``X.y``, and for
    ``from . import y`` the module ``y`` when it is one of ``modules``, else the package (``y`` is a name there)."""
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.add(full)
                if node.module or full not in modules:
                    names.add(base)
    return names


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports.

    ``from .x import y`` is an edge to ``x`` (and to ``x.y`` when that is a module); ``from . import y`` is an edge
    to the module ``y``. Importing a module does not count as importing the packages above it (Python has
    imported them already when one of their modules runs).
    """
    files = module_files(root, package)
    return {
        module: {name for name in imported_names(module, path, set(files)) if name in files and name != module}
        for module, path in files.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None when there is none."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once all its descendants are
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None  # a diamond is layered


def test_the_graph_sees_every_kind_of_import(tmp_path):
    pkg = tmp_path / "lib"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .sub import helper\n")
    (pkg / "top.py").write_text("import lib.low\n")
    (pkg / "low.py").write_text("def f():\n    from .sub.helper import g\n")
    (pkg / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import top\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "helper.py").write_text("from .. import low\nfrom ..top import thing\n")
    graph = import_graph(tmp_path, "lib")
    assert graph == {
        "lib": {"lib.sub", "lib.sub.helper"},
        "lib.top": {"lib.low"},
        "lib.low": {"lib.sub.helper"},  # a function-local import counts
        "lib.typed": {"lib.top"},  # so does one only for the type checker
        "lib.sub": set(),
        "lib.sub.helper": {"lib.low", "lib.top"},
    }
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"lib.low", "lib.sub.helper"}


def test_the_library_modules_import_each_other_without_a_cycle():
    graph = import_graph()
    assert len(graph) > 50 and "resnet_viz.race.engine" in graph["resnet_viz.race"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_library_never_imports_streamlit():
    files = module_files()
    offenders = sorted(
        module
        for module, path in files.items()
        if any(name == "streamlit" or name.startswith("streamlit.") for name in imported_names(module, path))
    )
    assert offenders == [], f"these library modules import streamlit: {offenders}"
    # And at run time: importing every module of the library loads no Streamlit (nor anything that pulls it in).
    code = (
        "import importlib, sys\n"
        f"for name in {sorted(files)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'streamlit' or m.startswith('streamlit.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"

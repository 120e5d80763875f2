"""The package's import graph, read from the source with ``ast`` (nothing is imported, so it takes milliseconds).

Every ``import`` / ``from ... import`` statement counts, wherever it sits: at module level, inside a function or
under ``if``, so a function-level import cannot hide a cycle. ``from .pkg import name`` imports ``genlab.pkg``, and
also ``genlab.pkg.name`` when that is a submodule. The package root (``genlab/__init__.py``: ``from . import
__version__``) is a leaf that is ignored as a target.

A *part* is a top-level subpackage or module of genlab (``genlab.cli``, ``genlab.io``, ``genlab._params``, ...).
The layers of ARCHITECTURE.md: nets -> models -> training -> front door, each importing only from those before it.
"""

from __future__ import annotations

import functools
from ast import Import, ImportFrom, parse, walk
from pathlib import Path
from typing import NamedTuple

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "genlab"


class Edge(NamedTuple):
    source: str  # the importing module: "genlab.cli.train"
    target: str  # a module the statement imports: "genlab.runs"
    name: str  # what it names, fully qualified: "genlab.runs.train_run"
    where: str  # "src/genlab/cli/train.py:10"


def module_name(path: Path, src: Path = SRC) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part(module: str) -> str:
    """The top-level part a module belongs to: "genlab.cli.train" -> "genlab.cli"."""
    return ".".join(module.split(".")[:2])


@functools.cache
def import_graph(src: Path = SRC) -> tuple[Edge, ...]:
    """Every import of a genlab module by a genlab module under ``src``, the root excluded as a target."""
    files = sorted((src / ROOT).rglob("*.py"))
    modules = {module_name(path, src) for path in files}
    edges = []
    for path in files:
        source = module_name(path, src)
        package = source if path.name == "__init__.py" else source.rpartition(".")[0]
        for node in walk(parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, Import):
                found = [(alias.name, alias.name) for alias in node.names]
            elif isinstance(node, ImportFrom):
                anchor = package.rsplit(".", node.level - 1)[0] if node.level else ""  # level 1: this package, 2: its parent
                base = ".".join(filter(None, [anchor, node.module]))
                found = [(base, f"{base}.{alias.name}") for alias in node.names]
                found += [(name, name) for _, name in found if name in modules]  # `from . import x`, x a submodule
            else:
                continue
            where = f"{path.relative_to(src.parent)}:{node.lineno}"
            edges += [Edge(source, target, name, where) for target, name in found if target.startswith(f"{ROOT}.")]
    return tuple(edges)


PARTS = sorted({part(module_name(path)) for path in (SRC / ROOT).rglob("*.py")} - {ROOT})
SHARED = [p for p in PARTS if p.startswith("genlab._") and not p.startswith("genlab.__")] + ["genlab.errors"]
LAYERS = {  # each lower layer and the parts it may import besides itself
    "genlab.nets": set(SHARED),
    "genlab.models": {"genlab.nets", *SHARED},
    "genlab.training": {"genlab.models", "genlab.nets", *SHARED},
}
# What the command may take from the lower layers: the error that means exit code 1, and the process's rank
# (cli/__init__.py: `from ..training import NonFiniteLossError, distributed`; train.py and recommend.py: distributed).
CLI_MAY_IMPORT = {"genlab.training.NonFiniteLossError", "genlab.training.distributed"}


def sites(edges) -> str:
    return "\n".join(dict.fromkeys(f"  {edge.where}: {edge.source} imports {edge.name}" for edge in edges))


def part_cycles(edges) -> list[str]:
    """Each group of mutually importing parts: its shortest cycle and the imports behind every edge inside it."""
    between = {}  # (source part, target part) -> the imports behind that edge
    for edge in edges:
        if part(edge.source) != part(edge.target):
            between.setdefault((part(edge.source), part(edge.target)), []).append(edge)
    nodes = sorted({p for pair in between for p in pair})
    succ = {p: sorted({b for a, b in between if a == p}) for p in nodes}

    def paths_from(start: str) -> dict[str, list[str]]:  # breadth first: the shortest path to each reachable part
        paths, frontier = {}, [[start]]
        while frontier:
            path = frontier.pop(0)
            for nxt in succ.get(path[-1], []):
                if nxt not in paths:
                    paths[nxt] = path + [nxt]
                    frontier.append(paths[nxt])
        return paths

    reach = {p: paths_from(p) for p in nodes}
    reports, seen = [], set()
    for p in nodes:
        group = sorted(q for q in reach[p] if p in reach[q])
        if not group or p in seen:
            continue
        seen.update(group)
        inside = [edge for (a, b), edges in sorted(between.items()) if a in group and b in group for edge in edges]
        reports.append(" -> ".join(reach[p][p]) + "\n" + sites(inside))
    return reports


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    # the estimators <-> io cycle as it was: io imports estimators at the top, estimators imports io inside save()
    files = {"__init__.py": "from . import io\n", "io.py": "from . import __version__\nfrom .estimators import base\n",
             "estimators/__init__.py": "from .base import Estimator\n",
             "estimators/base.py": "class Estimator:\n    def save(self):\n        from .. import io\n"}
    for name, text in files.items():
        (tmp_path / "src" / ROOT / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / ROOT / name).write_text(text, encoding="utf-8")
    assert part_cycles(import_graph(tmp_path / "src")) == [
        "genlab.estimators -> genlab.io -> genlab.estimators\n"
        "  src/genlab/estimators/base.py:3: genlab.estimators.base imports genlab.io\n"
        "  src/genlab/io.py:2: genlab.io imports genlab.estimators.base"]
    assert {"genlab.cli", "genlab.nets", "genlab.io", "genlab.errors", "genlab._fileio"} <= set(PARTS)


def test_top_level_parts_import_each_other_without_cycles():
    cycles = part_cycles(import_graph())
    assert not cycles, "import cycles between genlab's parts:\n" + "\n".join(cycles)


@pytest.mark.parametrize("layer", LAYERS)
def test_lower_layers_import_only_upward(layer):
    bad = [edge for edge in import_graph()
           if part(edge.source) == layer and part(edge.target) not in LAYERS[layer] | {layer}]
    assert not bad, f"{layer} may import only {sorted(LAYERS[layer])}:\n{sites(bad)}"


def test_shared_modules_import_only_shared_modules():
    # otherwise nets -> _params -> estimators would pass the layer test and still pull in the front door
    bad = [edge for edge in import_graph() if part(edge.source) in SHARED and part(edge.target) not in SHARED]
    assert not bad, f"the shared modules {SHARED} may import only each other:\n{sites(bad)}"


def test_cli_holds_no_family_logic():
    bad = [edge for edge in import_graph() if part(edge.source) == "genlab.cli"
           and part(edge.target) in LAYERS and edge.name not in CLI_MAY_IMPORT]
    assert not bad, f"genlab.cli may take from nets/models/training only {sorted(CLI_MAY_IMPORT)}:\n{sites(bad)}"

"""Layers that only point down: a run goes command → protocol → engine and store → analysis and
rendering without climbing back, and errors and small helpers live at the bottom.

Every module of src/kdlab is parsed (nothing is imported) and each of its imports of kdlab is
held to the layer order below. An import counts wherever it stands: at the top, inside a
function (it runs later, but the module still depends on what it imports), and under
`if TYPE_CHECKING:` (a type named from a higher layer still ties the lower one to it). Importing
`a.b.c` also runs the packages `a.b` and `a` first, so those count too, except the importer's
own packages (already running). The package root re-exports the API for users, on first use:
no module of kdlab imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kdlab

SRC = Path(kdlab.__file__).parent
ROOT = "kdlab"

# module prefix -> layer, bottom (0) to top; a module's layer is that of its longest prefix here
# (the root, "kdlab", names only the package itself)
LAYERS = {
    "kdlab.errors": 0,
    "kdlab.version": 0,
    "kdlab.io": 1,
    "kdlab.config": 1,
    "kdlab.choices": 1,
    "kdlab.seeds": 1,
    "kdlab.data": 2,
    "kdlab.models": 2,
    "kdlab.training": 3,
    "kdlab.settings": 4,
    "kdlab.calibration": 5,
    "kdlab.evaluation": 5,  # scoring and calibrating models: behind lab.evaluate, lab.calibrate, trials
    "kdlab.reporting": 5,
    "kdlab.result": 5,
    "kdlab.protocols": 6,
    "kdlab.protocols.contract": 6,  # the contract every protocol keeps and the core that runs any of them
    "kdlab.tracking": 7,
    "kdlab.sweep": 8,
    "kdlab.docs": 9,
    "kdlab.api": 10,
    "kdlab.cli": 10,
    "kdlab": 11,
}
WHY = {
    0: "the error every layer raises, and the version: they import nothing of kdlab",
    1: "small helpers on the standard library: files and folders, settings, their choices, seeds",
    2: "tensors in: the data sets and the model families",
    3: "training: the engine, its optimisers and losses, the model store",
    4: "each protocol's declaration (settings, typed metrics): the command line reads it without torch",
    5: "analysis and rendering: evaluation, calibration, statistics, findings, tables, figures, the Result",
    6: "the protocols: their contract and core, what they share (the Lab, the study), each one's measure",
    7: "trackers: they log a finished run from the files it wrote",
    8: "sweeps and searches: many runs of one protocol",
    9: "the docs: pages filled from the published runs",
    10: "the entry points: the Python API and the command line",
    11: "the package itself: it re-exports the API for users, and no module imports it",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def layer(module: str) -> int | None:
    """The layer of `module`: that of its longest prefix in LAYERS (None: not placed)."""
    if module == ROOT:
        return LAYERS[ROOT]
    prefixes = [p for p in LAYERS if p != ROOT and (module == p or module.startswith(p + "."))]
    return LAYERS[max(prefixes, key=len)] if prefixes else None


def packages(module: str) -> list[str]:
    """The packages that importing `module` runs first, outermost first (the root included)."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported(module: str) -> list[tuple[str, int]]:
    """(kdlab module, line) of every import in `module`, at any depth; `from a import b` is of
    the module a.b where there is one, else of a."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                above = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*above, *([node.module] if node.module else [])])
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.append((name if name in MODULES else base, node.lineno))
    return [(name, line) for name, line in found if name == ROOT or name.startswith(ROOT + ".")]


def edges() -> dict[str, dict[str, int]]:
    """module -> {module it imports, or a package that import runs: the first line doing so}."""
    graph: dict[str, dict[str, int]] = {}
    for module in MODULES:
        targets = graph.setdefault(module, {})
        running = packages(module)
        for name, line in imported(module):
            for target in (*(p for p in packages(name) if p not in running), name):
                if target != module:
                    targets.setdefault(target, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The import circles of `graph`: its strongly connected components of more than one module
    (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer_and_every_layer_a_reason():
    assert set(LAYERS.values()) == set(WHY), "each layer needs its one-line reason"
    unplaced = [m for m in MODULES if layer(m) is None]
    assert not unplaced, f"place these modules in LAYERS: {', '.join(unplaced)}"


def test_no_import_points_up_the_layers():
    upward = [
        f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)}) "
        f"at {MODULES[module].relative_to(SRC.parent)}:{line}"
        for module, targets in edges().items()
        for target, line in targets.items()
        if target in MODULES and layer(target) > layer(module)
    ]
    assert not upward, "imports pointing up:\n" + "\n".join(upward)


def test_no_import_circle():
    assert not cycles(edges()), f"import circles: {cycles(edges())}"


def test_the_checks_see_what_they_must():
    """The parser finds imports inside functions and under TYPE_CHECKING, and the circle search
    finds a circle, so that the tests above cannot pass by seeing nothing."""
    assert "kdlab.api" in dict(imported(ROOT))  # inside __getattr__
    assert "kdlab.training.store" in dict(imported("kdlab.result"))  # under TYPE_CHECKING
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]

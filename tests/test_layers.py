"""The layer order of docs/architecture.md, enforced: every import inside ``procgen/`` (also the
function-local ones) goes to the same or a lower layer, the import graph has no cycle, and no
module is over 600 lines."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "procgen"

# lowest first; a module belongs to the layer of the longest prefix that names it
LAYERS = [
    ("foundation", ["procgen._version", "procgen._checks", "procgen._files", "procgen._arrow", "procgen._bits"]),
    ("randomness", ["procgen._rng"]),
    ("tasks", ["procgen.tasks"]),
    ("rows", ["procgen.batch", "procgen._workers"]),
    ("generation", ["procgen.api", "procgen.mixture", "procgen.streaming"]),
    ("datasets", ["procgen._layout", "procgen._manifest", "procgen._read", "procgen._sink", "procgen._shards",
                  "procgen._verify", "procgen.dataset"]),
    ("distribution", ["procgen.hub_card", "procgen.hub", "procgen.export"]),
    ("training", ["procgen.train"]),
    ("facade", ["procgen"]),
    ("cli", ["procgen.cli"]),
]
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known) -> set[str]:
    """procgen modules ``path`` imports anywhere in its code (``from a import b``: ``a.b`` if a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "procgen")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "procgen":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import (procgen uses absolute imports)")
    return found


def layer_of(name: str) -> int:
    best, best_length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = name == prefix or (prefix != "procgen" and name.startswith(prefix + "."))
            if matches and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    if best is None:
        raise AssertionError(f"{name} is in no layer: add it to LAYERS here and to docs/architecture.md")
    return best


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {t for t in imports(path, known) if t != name} for name, path in known.items()}


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_imports_never_go_up_a_layer():
    upward = []
    for source, targets in graph().items():
        for target in targets:
            if layer_of(target) > layer_of(source):
                upward.append(f"{source} ({LAYERS[layer_of(source)][0]}) imports {target} "
                              f"({LAYERS[layer_of(target)][0]})")
    assert not upward, "\n".join(upward)


def test_the_import_graph_has_no_cycle():
    edges = graph()
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_over_600_lines(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name}: {lines} lines (split it along its jobs)"


def test_the_checker_sees_an_upward_import(tmp_path):
    """The checks can fail: a task module importing the dataset layer is reported."""
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from procgen.dataset import write\n")
    found = imports(module, modules())
    assert found == {"procgen.dataset"}
    assert layer_of("procgen.dataset") > layer_of("procgen.tasks.dyck")
    assert layer_of("procgen.cli.train") > layer_of("procgen.train.loop") > layer_of("procgen.api")


def test_layers_match_the_architecture_page():
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    for layer, prefixes in LAYERS:
        assert f"**{layer}**" in page, f"docs/architecture.md does not describe layer {layer!r}"
        for prefix in prefixes:
            assert f"`{prefix}`" in page, f"docs/architecture.md does not place {prefix}"

"""spirtd's rooms import only downward: lower layers never import upper
ones (imports under TYPE_CHECKING, for annotations only, do not count)."""

from __future__ import annotations

import ast
from pathlib import Path

import spirtd

# Lowest first; a room may import its own modules and those of lower layers.
LAYERS = (
    ("errors", "api", "_native"),
    ("clock", "files", "machine", "options", "logs", "processes", "tasks"),
    ("aggregation", "optim", "security"),
    ("store", "rpc", "membership", "workers", "metrics"),
    ("ml", "exchange"),
    ("jobs",),
    ("daemon",),
    ("localcluster",),
    ("cli",),
)
RANK = {room: rank for rank, rooms in enumerate(LAYERS) for room in rooms}
PACKAGE = Path(spirtd.__file__).parent


def _room(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return None if parts == ("__init__.py",) else parts[0].removesuffix(".py")


def _runtime_imports(tree: ast.Module) -> list[tuple[int, str]]:
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for n in ast.walk(node)}  # fmt: skip
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("spirtd."):
            found.append((node.lineno, node.module.split(".")[1]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("spirtd.")]
    return found


def test_every_room_has_a_layer():
    rooms = {_room(p) for p in PACKAGE.rglob("*.py")} - {None}
    assert rooms <= set(RANK), f"rooms with no layer: {sorted(rooms - set(RANK))}"


def test_no_room_imports_upward():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        room = _room(path)
        if room is None:
            continue
        for line, target in _runtime_imports(ast.parse(path.read_text())):
            if target != room and RANK[target] >= RANK[room]:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports spirtd.{target}")
    assert not upward, "\n".join(upward)

"""The layout rules of docs/architecture.md, checked on the source: no import cycles
inside ``edge_agent``, and each third-party library imported by its one owner."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "edge_agent"

# library -> the only modules allowed to import it
OWNERS = {
    "paho": {"edge_agent.mqtt.client"},
    "picamera2": {"edge_agent.capture.picamera2_source"},
    # The device's keys and signatures; the operator's CA (never on a device) its own.
    "cryptography": {"edge_agent.crypto", "provisioning.pki"},
    "gpiozero": {"edge_agent.indicator"},
    "ai_edge_litert": {"edge_agent.detect.runtime"},
    "tflite_runtime": {"edge_agent.detect.runtime"},
    "av": {"edge_agent.video"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth, except under ``if TYPE_CHECKING:``."""
    found: set[str] = set()
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in imports_of(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            connect(node)
    return found


def test_the_checker_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_edge_agent_has_no_import_cycle() -> None:
    edges = graph()
    assert len(edges) > 60  # the checker read the package
    # A package's __init__ re-exporting its modules is not a cycle of concerns: a module
    # importing a sibling through the package is, so only __init__ -> child edges go.
    edges = {
        name: {m for m in targets if not m.startswith(f"{name}.")}
        for name, targets in edges.items()
    }
    assert cycles(edges) == []


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_each_third_party_library_has_one_owner(library: str) -> None:
    # The operator's tool (provisioning/) goes through the same owners as the agent.
    sources = [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "provisioning").rglob("*.py")]
    importers = {
        module_name(path)
        for path in sources
        if any(m == library or m.startswith(f"{library}.") for m in imports_of(path))
    }
    assert importers <= OWNERS[library], (
        f"{library} imported by {sorted(importers - OWNERS[library])}"
    )

"""Imports flow one way: cli/server -> chat/pipeline/rag/services -> backends -> core.

Every ``import`` in sage_lsp (at the top of a module, inside a function, or for type checking
only) is read with ``ast``; a module may import its own layer and those below, never one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sage_lsp

ROOT = Path(sage_lsp.__file__).parent

LAYERS: dict[str, int] = {
    "sage_lsp.core": 0,
    "sage_lsp": 1,  # the package itself and its single modules: config, paths, processes,
    # protocol
    "sage_lsp.backends": 2,
    "sage_lsp.chat": 3,
    "sage_lsp.completion": 3,
    "sage_lsp.pipeline": 3,
    "sage_lsp.rag": 3,
    "sage_lsp.services": 3,
    "sage_lsp.cli": 4,
    "sage_lsp.gateway": 4,
    "sage_lsp.server": 4,
    "sage_lsp.__main__": 4,
}
"""The layer of each package (a module not listed belongs to its nearest listed parent)."""


def layer(module: str) -> int:
    """The layer of a sage_lsp module."""
    parts = module.split(".")
    while ".".join(parts) not in LAYERS:
        parts.pop()
    return LAYERS[".".join(parts)]


def module_name(path: Path) -> str:
    """``sage_lsp/server/app.py`` -> ``sage_lsp.server.app``."""
    relative = path.relative_to(ROOT.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imports(source: str) -> list[tuple[int, str]]:
    """Every sage_lsp name ``source`` imports, with its line (sage_lsp imports absolutely)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"line {node.lineno}: a relative import"
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "sage_lsp"]


def upward_imports() -> list[str]:
    """``path:line: module (layer) imports name (layer)`` for each import of a higher layer."""
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        module = module_name(path)
        for line, name in imports(path.read_text(encoding="utf-8")):
            if layer(name) > layer(module):
                wrong.append(
                    f"{path.relative_to(ROOT.parent)}:{line}: {module} (layer {layer(module)}) "
                    f"imports {name} (layer {layer(name)})"
                )
    return wrong


def test_no_module_imports_a_higher_layer() -> None:
    assert upward_imports() == []


def test_core_imports_nothing_of_sage_lsp() -> None:
    for path in (ROOT / "core").rglob("*.py"):
        assert imports(path.read_text(encoding="utf-8")) == [], path


def test_the_check_sees_an_import_inside_a_function() -> None:
    source = "import os\n\ndef f():\n    from sage_lsp.services.manager import ServiceManager\n"
    assert imports(source) == [(4, "sage_lsp.services.manager.ServiceManager")]
    assert layer("sage_lsp.services.manager.ServiceManager") > layer("sage_lsp.backends.mock")
    assert layer("sage_lsp.protocol") < layer("sage_lsp.backends.base")
    assert layer("sage_lsp.core.errors") == 0

"""The editors' side of protocol v1 matches sage_lsp/protocol.py.

The VS Code extension declares the protocol in ``editors/vscode/src/protocol.ts``: its method
names, error codes, payload interfaces and string unions are compared with the wire shape that
protocol.py's dataclasses give (``to_wire``: camelCase keys; an optional field that is ``None``
is left out, a required one is sent as ``null``), and its ``Requests`` map with the params and
result classes sage_lsp/server/routes.py routes each request with. The Neovim plugin names its
methods in ``lua/sage/methods.lua``. Neither editor spells a ``sage/*`` method anywhere else.
The settings the extension sends are settings of the server.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest

from sage_lsp import protocol
from sage_lsp.config import SPECS
from sage_lsp.pipeline import document
from sage_lsp.server.routes import ROUTES
from tests.editors.ts_declarations import TsModule, TsSyntaxError, TsType, parse_module

REPO = Path(__file__).resolve().parents[2]
VSCODE_SRC = REPO / "editors" / "vscode" / "src"
PROTOCOL_TS = VSCODE_SRC / "protocol.ts"
NVIM = REPO / "editors" / "nvim"
METHODS_LUA = NVIM / "lua" / "sage" / "methods.lua"

Atom = str | tuple[str, Any]
"""One member of a type: ``string``, ``number``, ``boolean``, ``null``, ``object``, or
``("literal", text)``, ``("ref", class name)``, ``("array", frozenset of atoms)``."""

PAYLOADS: dict[str, type] = {
    name: value
    for name, value in vars(protocol).items()
    if isinstance(value, type)
    and dataclasses.is_dataclass(value)
    and value.__module__ == protocol.__name__
}
"""protocol.py's params, results and their parts, by class name."""

WIRE_NAMES: dict[str, str | int] = {
    protocol.camel(name.lower()): value
    for name, value in vars(protocol).items()
    if name.isupper()
    and ((isinstance(value, str) and value.startswith("sage/")) or isinstance(value, int))
}
"""protocol.py's method names and codes by their camelCase name (``CHAT_RESET`` -> chatReset)."""

COMMAND_NAMES: dict[str, str] = {
    name.removeprefix("COMMAND_").lower(): value
    for name, value in vars(protocol).items()
    if name.startswith("COMMAND_")
}
"""protocol.py's commands by their short name (``COMMAND_FIX`` -> fix)."""

TS_ONLY_INTERFACES = {"SageCapabilities", "Requests"}
"""protocol.ts interfaces with no payload class: ``capabilities.experimental.sage`` of the
initialize result (:func:`test_capabilities_match`) and the map of requests to their params and
result (:func:`test_requests_match_the_routes`)."""


def python_atoms(kind: Any) -> frozenset[Atom]:
    """The members of a Python annotation of protocol.py."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return frozenset().union(*(python_atoms(option) for option in typing.get_args(kind)))
    if origin is typing.Literal:
        return frozenset(("literal", text) for text in typing.get_args(kind))
    if origin is list:
        return frozenset({("array", python_atoms(typing.get_args(kind)[0]))})
    if origin is dict or kind is Any:
        return frozenset({"object"})
    simple = {str: "string", int: "number", float: "number", bool: "boolean"}
    if kind in simple:
        return frozenset({simple[kind]})
    if kind is type(None):
        return frozenset({"null"})
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return frozenset({("ref", kind.__name__)})
    raise TypeError(f"no wire type for {kind!r}")


def ts_atoms(kind: TsType, module: TsModule) -> frozenset[Atom]:
    """The members of a protocol.ts type; aliases are expanded, imported types are objects."""
    if kind.kind == "union":
        return frozenset().union(*(ts_atoms(item, module) for item in kind.items))
    if kind.kind == "array":
        return frozenset({("array", ts_atoms(kind.items[0], module))})
    if kind.kind == "literal":
        return frozenset({("literal", kind.name)})
    if kind.kind == "object" or kind.name == "Record" or kind.name in module.imports:
        return frozenset({"object"})
    if kind.name in ("string", "number", "boolean", "null"):
        return frozenset({kind.name})
    if kind.name in module.aliases:
        return ts_atoms(module.aliases[kind.name], module)
    if kind.name in module.interfaces:
        return frozenset({("ref", kind.name)})
    raise TsSyntaxError(f"protocol.ts: unknown type {kind.name!r}")


def show(atoms: frozenset[Atom]) -> str:
    """A type's members as TypeScript, sorted."""

    def one(atom: Atom) -> str:
        if isinstance(atom, str):
            return atom
        tag, value = atom
        if tag == "literal":
            return repr(value)
        return f"({show(value)})[]" if tag == "array" else str(value)

    return " | ".join(sorted(one(atom) for atom in atoms))


def interface_problems(name: str, module: TsModule) -> list[str]:
    """How interface ``name`` differs from what the server sends or takes under that name.

    Params go from the editor to the server: a field may be left out when it has a default, and
    may be ``null`` only where the server takes ``null``. Everything else comes from the server:
    a field is optional exactly when ``to_wire`` leaves it out (it has a default and is
    ``None``), and ``null`` exactly when a required field may be ``None``.
    """
    cls = PAYLOADS[name]
    hints = typing.get_type_hints(cls)
    declared = module.all_fields(name)
    problems: list[str] = []
    wire = {protocol.camel(f.name): f for f in dataclasses.fields(cls)}
    for key in sorted(wire.keys() - declared.keys()):
        problems.append(f"{name}.{key}: on the wire, missing in protocol.ts")
    for key in sorted(declared.keys() - wire.keys()):
        problems.append(f"{name}.{key}: in protocol.ts, never on the wire")
    for key in sorted(wire.keys() & declared.keys()):
        f, ts = wire[key], declared[key]
        atoms = python_atoms(hints[f.name])
        has_default = (
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        )
        if name.endswith("Params"):
            optional = has_default
            expected = atoms - {"null"}
            got = ts_atoms(ts.type, module) - ({"null"} if "null" in atoms else set())
        else:
            optional = f.default is not dataclasses.MISSING and "null" in atoms
            expected = atoms - {"null"} if optional else atoms
            got = ts_atoms(ts.type, module)
        if ts.optional != optional:
            want = "optional (?)" if optional else "required"
            problems.append(f"{name}.{key}: should be {want} in protocol.ts")
        if got != expected:
            problems.append(f"{name}.{key}: protocol.ts has {show(got)}, wire {show(expected)}")
    return problems


@pytest.fixture(scope="module")
def module() -> TsModule:
    return parse_module(PROTOCOL_TS.read_text(encoding="utf-8"))


def test_every_interface_matches_its_payload_class(module: TsModule) -> None:
    unknown = module.interfaces.keys() - PAYLOADS.keys() - TS_ONLY_INTERFACES
    assert not unknown, f"protocol.ts interfaces with no class in protocol.py: {sorted(unknown)}"
    problems = [
        problem
        for name in sorted(module.interfaces.keys() & PAYLOADS.keys())
        for problem in interface_problems(name, module)
    ]
    assert not problems, "protocol.ts differs from protocol.py:\n" + "\n".join(problems)


def test_string_unions_match(module: TsModule) -> None:
    for name, alias in module.aliases.items():
        assert hasattr(protocol, name), f"protocol.ts type {name} is not in protocol.py"
        assert ts_atoms(alias, module) == python_atoms(getattr(protocol, name)), name


def test_method_names_and_error_codes_match(module: TsModule) -> None:
    assert set(module.consts) == {"Methods", "ErrorCodes", "PipelineFiles", "Commands"}
    assert module.consts["Commands"] == COMMAND_NAMES
    for const in ("Methods", "ErrorCodes"):
        differ = {
            key: (value, WIRE_NAMES.get(key))
            for key, value in module.consts[const].items()
            if WIRE_NAMES.get(key) != value
        }
        assert differ == {}, f"{const}: protocol.ts value, protocol.py value"


def test_pipeline_files_match_the_server(module: TsModule) -> None:
    files = module.consts["PipelineFiles"]
    assert files == {
        "suffixes": list(document.PIPELINE_SUFFIXES),
        "folder": document.PIPELINE_FOLDER,
    }


def test_requests_match_the_routes(module: TsModule) -> None:
    routes = {route.method: (route.params.__name__, route.result.__name__) for route in ROUTES}
    declared = {
        f.name: tuple(item.name for item in f.type.items)
        for f in module.interfaces["Requests"].fields
        if f.type.kind == "tuple"
    }
    assert len(declared) == len(module.interfaces["Requests"].fields), "[params, result] each"
    assert {method: routes.get(method) for method in declared} == declared


def test_capabilities_match(module: TsModule) -> None:
    fields = module.all_fields("SageCapabilities")
    assert {key: ts_atoms(f.type, module) for key, f in fields.items()} == {
        "version": python_atoms(type(protocol.PROTOCOL_VERSION)),
        "methods": frozenset({("array", frozenset({"string"}))}),
    }


def test_a_drifted_interface_is_reported() -> None:
    drifted = parse_module(
        "export type BackendState = 'idle' | 'merging';\n"
        "export interface StatusChange { state: BackendState; backend?: string; extra: number }"
    )
    assert interface_problems("StatusChange", drifted) == [
        "StatusChange.message: on the wire, missing in protocol.ts",
        "StatusChange.model: on the wire, missing in protocol.ts",
        "StatusChange.extra: in protocol.ts, never on the wire",
        "StatusChange.backend: should be required in protocol.ts",
        "StatusChange.state: protocol.ts has 'idle' | 'merging', "
        "wire 'error' | 'idle' | 'ready' | 'starting'",
    ]


def test_a_construct_outside_the_subset_fails_the_parse() -> None:
    with pytest.raises(TsSyntaxError, match="line 2"):
        parse_module("export type A = string;\nexport function f(): void {}\n")


def lua_methods() -> dict[str, str]:
    """``key = 'sage/...'`` of methods.lua."""
    text = METHODS_LUA.read_text(encoding="utf-8")
    return dict(re.findall(r"^\s*(\w+)\s*=\s*'(sage/[^']*)',?\s*$", text, re.MULTILINE))


def test_the_nvim_method_names_match() -> None:
    methods = lua_methods()
    assert methods, "methods.lua names no method"
    python = {name.lower(): value for name, value in vars(protocol).items() if name.isupper()}
    assert {key: python.get(key) for key in methods} == methods


def method_literals(root: Path, suffix: str, comment: str, *, skip: Path) -> list[str]:
    """Lines of ``root``'s files that spell a ``sage/*`` method outside a comment."""
    found = []
    for path in sorted(root.rglob(f"*{suffix}")):
        if path == skip:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split(comment, 1)[0]
            if re.search(r"""['"]sage/\w""", code):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    return found


def test_editors_name_methods_only_in_their_protocol_module() -> None:
    assert method_literals(NVIM, ".lua", "--", skip=METHODS_LUA) == []
    assert method_literals(VSCODE_SRC, ".ts", "//", skip=PROTOCOL_TS) == []


def test_the_settings_the_extension_sends_are_the_servers() -> None:
    text = (VSCODE_SRC / "userSettings.ts").read_text(encoding="utf-8")
    declared = re.search(r"export const PROTOCOL_KEYS = \[(.*?)\] as const;", text, re.DOTALL)
    assert declared, "userSettings.ts declares no PROTOCOL_KEYS"
    keys = re.findall(r"'([\w.]+)'", declared[1])
    assert keys and sorted(set(keys) - {spec.protocol_name for spec in SPECS}) == []

"""A strict parser of the TypeScript subset that ``editors/vscode/src/protocol.ts`` is written in.

protocol.ts holds declarations only, so the subset is small: ``import`` lines, ``export const
NAME = {key: value, ...} as const`` (string, number or string-array values), ``export type NAME
= TYPE`` and ``export interface NAME [extends BASE] {field[?]: TYPE; ...}`` (a field's name may
be a string literal). A type is a union (``|``) of ``string``, ``number``, ``boolean``, ``null``,
a string literal, a name, ``Name<T, U>``, an object literal ``{...}``, a tuple ``[T, U]``,
``(TYPE)``, each maybe followed by ``[]``. Anything else is a
:class:`TsSyntaxError` with its line, so a construct the contract test does not understand fails
the test instead of being skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r"""(?P<space>\s+)|(?P<comment>//[^\n]*|/\*.*?\*/)
    |(?P<string>'[^'\\\n]*'|"[^"\\\n]*")|(?P<number>-?\d+(?:\.\d+)?)
    |(?P<name>[A-Za-z_$][\w$]*)|(?P<punct>[{}\[\]()<>:;,|?=.])""",
    re.VERBOSE | re.DOTALL,
)


class TsSyntaxError(ValueError):
    """protocol.ts uses a construct outside the subset (the message names the line)."""


@dataclass(frozen=True)
class Token:
    """One token and the line it starts on."""

    kind: str
    text: str
    line: int


@dataclass(frozen=True)
class TsType:
    """A type expression: ``kind`` is ``union`` (``items``), ``array`` (``items[0]``),
    ``literal`` (``name`` holds the string), ``name`` (``name``, generic ``items``), ``tuple``
    (``items``) or ``object`` (``fields``)."""

    kind: str
    name: str = ""
    items: tuple[TsType, ...] = ()
    fields: tuple[TsField, ...] = ()


@dataclass(frozen=True)
class TsField:
    """A property of an interface or object literal."""

    name: str
    optional: bool
    type: TsType


@dataclass(frozen=True)
class TsInterface:
    """An ``interface``: its own fields and the interface it extends, if any."""

    name: str
    fields: tuple[TsField, ...]
    extends: str | None


@dataclass
class TsModule:
    """The declarations of one file."""

    imports: set[str] = field(default_factory=set)
    consts: dict[str, dict[str, object]] = field(default_factory=dict)
    aliases: dict[str, TsType] = field(default_factory=dict)
    interfaces: dict[str, TsInterface] = field(default_factory=dict)

    def all_fields(self, name: str) -> dict[str, TsField]:
        """The fields of interface ``name``, those it inherits included."""
        interface = self.interfaces[name]
        inherited = self.all_fields(interface.extends) if interface.extends else {}
        return {**inherited, **{f.name: f for f in interface.fields}}


def tokenize(source: str) -> list[Token]:
    """The tokens of ``source`` without spaces and comments."""
    tokens: list[Token] = []
    position, line = 0, 1
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise TsSyntaxError(f"line {line}: unexpected {source[position]!r}")
        kind = match.lastgroup or ""
        if kind not in ("space", "comment"):
            tokens.append(Token(kind, match.group(), line))
        line += match.group().count("\n")
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = tokenize(source)
        self.at = 0

    def peek(self, offset: int = 0) -> Token | None:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def fail(self, expected: str) -> TsSyntaxError:
        token = self.peek()
        where = f"line {token.line}: {token.text!r}" if token else "the end of the file"
        return TsSyntaxError(f"{where}: expected {expected}")

    def take(self, text: str | None = None, kind: str | None = None) -> Token:
        token = self.peek()
        if token is None or (text and token.text != text) or (kind and token.kind != kind):
            raise self.fail(repr(text) if text else kind or "a token")
        self.at += 1
        return token

    def accept(self, text: str) -> bool:
        token = self.peek()
        if token is not None and token.text == text and token.kind != "string":
            self.at += 1
            return True
        return False

    def module(self) -> TsModule:
        module = TsModule()
        while self.peek() is not None:
            if self.accept("import"):
                self.imports(module)
                continue
            self.take("export")
            keyword = self.take(kind="name").text
            name = self.take(kind="name").text
            if keyword == "const":
                self.take("=")
                module.consts[name] = self.const_object()
                self.take("as")
                self.take("const")
            elif keyword == "type":
                self.take("=")
                module.aliases[name] = self.type()
            elif keyword == "interface":
                extends = self.take(kind="name").text if self.accept("extends") else None
                module.interfaces[name] = TsInterface(name, self.object_fields(), extends)
                continue
            else:
                self.at -= 2
                raise self.fail("const, type or interface")
            self.take(";")
        return module

    def imports(self, module: TsModule) -> None:
        self.accept("type")
        self.take("{")
        while not self.accept("}"):
            self.accept("type")
            module.imports.add(self.take(kind="name").text)
            self.accept(",")
        self.take("from")
        self.take(kind="string")
        self.take(";")

    def const_object(self) -> dict[str, object]:
        values: dict[str, object] = {}
        self.take("{")
        while not self.accept("}"):
            key = self.take(kind="name").text
            self.take(":")
            values[key] = self.value()
            if not self.accept(","):
                self.take("}")
                break
        return values

    def value(self) -> object:
        token = self.peek()
        if token is not None and token.kind == "string":
            self.at += 1
            return token.text[1:-1]
        if token is not None and token.kind == "number":
            self.at += 1
            return float(token.text) if "." in token.text else int(token.text)
        if self.accept("["):
            items: list[object] = []
            while not self.accept("]"):
                items.append(self.take(kind="string").text[1:-1])
                if not self.accept(","):
                    self.take("]")
                    break
            return items
        raise self.fail("a string, a number or an array of strings")

    def object_fields(self) -> tuple[TsField, ...]:
        fields: list[TsField] = []
        self.take("{")
        while not self.accept("}"):
            token = self.peek()
            quoted = token is not None and token.kind == "string"
            name = self.take(kind="string").text[1:-1] if quoted else self.take(kind="name").text
            optional = self.accept("?")
            self.take(":")
            fields.append(TsField(name, optional, self.type()))
            if not (self.accept(";") or self.accept(",")):
                self.take("}")
                break
        return tuple(fields)

    def type(self) -> TsType:
        self.accept("|")
        items = [self.postfix()]
        while self.accept("|"):
            items.append(self.postfix())
        return items[0] if len(items) == 1 else TsType("union", items=tuple(items))

    def postfix(self) -> TsType:
        kind = self.primary()
        while self.accept("["):
            self.take("]")
            kind = TsType("array", items=(kind,))
        return kind

    def primary(self) -> TsType:
        token = self.peek()
        if token is None:
            raise self.fail("a type")
        if token.kind == "string":
            self.at += 1
            return TsType("literal", name=token.text[1:-1])
        if self.accept("("):
            inner = self.type()
            self.take(")")
            return inner
        if token.text == "{" and token.kind == "punct":
            return TsType("object", fields=self.object_fields())
        if self.accept("["):
            items = [self.type()]
            while self.accept(","):
                items.append(self.type())
            self.take("]")
            return TsType("tuple", items=tuple(items))
        name = self.take(kind="name").text
        arguments: list[TsType] = []
        if self.accept("<"):
            arguments.append(self.type())
            while self.accept(","):
                arguments.append(self.type())
            self.take(">")
        return TsType("name", name=name, items=tuple(arguments))


def parse_module(source: str) -> TsModule:
    """The declarations of ``source``; raises :class:`TsSyntaxError` outside the subset."""
    return _Parser(source).module()

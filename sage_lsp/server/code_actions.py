"""The code actions "Sage: explain" and "Sage: fix", and the ``sage.fix`` command.

On a non-empty range, or where the client sends diagnostics, ``textDocument/codeAction``
offers both. "Sage: explain" carries the command ``sage.explain`` with ``[ContextRef]``: the
client runs it (it opens the chat with that context). "Sage: fix" carries ``sage.fix`` with
``[FixArgs]``, which the server runs (:func:`fix`): it asks the session's backend for a
replacement of the range, takes the first fenced block of the answer, re-indents it to the
range, and sends ``workspace/applyEdit`` with one TextEdit for exactly that range.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from lsprotocol.converters import get_converter

from sage_lsp import protocol
from sage_lsp.backends.base import ChatRequest, Delta
from sage_lsp.chat.editor_context import Excerpt, fenced_code, problem, reindented
from sage_lsp.core.errors import BackendError, ErrorKind
from sage_lsp.core.text import indentation
from sage_lsp.core.types import Message
from sage_lsp.server.documents import Document, diagnostics, lsp_range, read, span

if TYPE_CHECKING:
    from sage_lsp.server.app import SageServer

EXPLAIN_TITLE = "Sage: explain"
FIX_TITLE = "Sage: fix"

FIX_SYSTEM_PROMPT = (
    "You fix code. You are shown lines of a file, numbered, and the problems found in them. "
    "Answer with the corrected lines only, in one fenced code block, without the line numbers "
    "and without anything else."
)
"""The system prompt of a ``sage.fix`` request."""
FIX_QUESTION = "Fix the code of {label}."
"""The first line of a fix request's user message (the mock backend answers it with a fix)."""
DEFAULT_INSTRUCTION = "Fix the problems listed."


def code_actions(
    server: SageServer, params: types.CodeActionParams
) -> list[types.CodeAction] | None:
    """The two actions on a non-empty range or where diagnostics were sent (there: the lines
    they cover when the range is empty); none elsewhere."""
    sent = list(params.context.diagnostics)
    chosen = params.range
    if chosen.start == chosen.end:
        if not sent:
            return None
        chosen = types.Range(
            start=types.Position(line=min(d.range.start.line for d in sent), character=0),
            end=types.Position(line=max(d.range.end.line for d in sent) + 1, character=0),
        )
    converter = get_converter()
    uri = params.text_document.uri
    wire_range = converter.unstructure(chosen)
    wire_diagnostics = converter.unstructure(sent) if sent else None
    explain = protocol.to_wire(protocol.ContextRef(uri, wire_range, wire_diagnostics))
    fix = protocol.to_wire(protocol.FixArgs(uri, wire_range, wire_diagnostics))
    actions = [
        types.CodeAction(
            title=EXPLAIN_TITLE,
            kind=types.CodeActionKind.QuickFix if sent else types.CodeActionKind.Refactor,
            diagnostics=sent or None,
            command=types.Command(EXPLAIN_TITLE, protocol.COMMAND_EXPLAIN, arguments=[explain]),
        ),
        types.CodeAction(
            title=FIX_TITLE,
            kind=types.CodeActionKind.QuickFix if sent else types.CodeActionKind.RefactorRewrite,
            diagnostics=sent or None,
            command=types.Command(FIX_TITLE, protocol.COMMAND_FIX, arguments=[fix]),
        ),
    ]
    only = params.context.only
    return [a for a in actions if not only or any(str(a.kind).startswith(k) for k in only)] or None


def fix_args(arguments: list[Any]) -> protocol.FixArgs:
    """The one argument of ``sage.fix``, checked; -32602 naming the field."""
    if len(arguments) != 1:
        raise protocol.InvalidParams(
            f"{protocol.COMMAND_FIX} takes one argument, not {len(arguments)}"
        )
    if not isinstance(arguments[0], dict):
        raise protocol.InvalidParams("arguments[0] must be an object")
    try:
        args = protocol.from_wire(protocol.FixArgs, arguments[0])
    except protocol.InvalidParams as exc:
        raise protocol.InvalidParams(f"arguments[0].{exc}") from None
    return args


async def fix(server: SageServer, arguments: list[Any]) -> protocol.FixResult:
    """Run ``sage.fix``: the model's replacement of the range, applied with
    ``workspace/applyEdit``; cancelling it closes the stream to the model."""
    args = fix_args(arguments)
    await server.configured()
    where = "arguments[0]"
    chosen = lsp_range(args.range, f"{where}.range")
    if chosen.start == chosen.end:
        raise protocol.InvalidParams(f"{where}.range is empty: there is nothing to replace")
    sent = diagnostics(args.diagnostics or [], f"{where}.diagnostics")
    document = read(server, args.uri, f"{where}.uri")
    found = span(server, document, chosen)
    lines = document.lines
    (start_line, start_char), (end_line, end_char) = found.start, found.end
    before = lines[start_line][:start_char] if start_line < len(lines) else ""
    offset = sum(len(line) for line in lines[:start_line]) + start_char
    end = sum(len(line) for line in lines[:end_line]) + end_char
    old = document.text[offset:end]
    excerpt = Excerpt(
        document.path,
        start_line + 1,
        tuple(old.splitlines() or [""]),
        document.language,
        tuple(problem(d) for d in sent),
    )
    answer = await _ask(server, excerpt, args.instruction or DEFAULT_INSTRUCTION)
    code = fenced_code(answer)
    if code is None:
        raise BackendError(
            ErrorKind.SERVER,
            "the model's answer holds no fenced code block to apply",
            "try again, or say what to change in the instruction",
        )
    indent = indentation(lines[start_line] if start_line < len(lines) else "")
    text = reindented(code, indent, before, old.endswith(("\n", "\r")))
    if "\r\n" in document.text:  # the document's line ends
        text = text.replace("\n", "\r\n")
    edit = types.TextEdit(range=chosen, new_text=text)
    applied = await server.workspace_apply_edit_async(
        types.ApplyWorkspaceEditParams(
            edit=_workspace_edit(server, document, edit), label=FIX_TITLE
        )
    )
    return protocol.FixResult(applied.applied, text)


async def _ask(server: SageServer, excerpt: Excerpt, instruction: str) -> str:
    """The session backend's whole answer to a fix request for ``excerpt``."""
    settings = server.session.settings
    question = "\n\n".join(
        [FIX_QUESTION.format(label=excerpt.label), excerpt.render(), instruction]
    )
    messages = (Message("system", FIX_SYSTEM_PROMPT), Message("user", question))
    pieces: list[str] = []
    async with server.session.turn_backend(settings) as backend:
        request = ChatRequest(messages, max_tokens=settings.max_tokens)
        async with aclosing(backend.stream(request)) as events:
            async for event in events:
                if isinstance(event, Delta):
                    pieces.append(event.text)
    return "".join(pieces)


def _workspace_edit(
    server: SageServer, document: Document, edit: types.TextEdit
) -> types.WorkspaceEdit:
    """One edit of the document: tied to the synced version where the client takes
    versioned edits (so an edit made meanwhile makes the client refuse it)."""
    workspace = server.client_capabilities.workspace
    caps = workspace.workspace_edit if workspace else None
    if document.version is not None and caps and caps.document_changes:
        identifier = types.OptionalVersionedTextDocumentIdentifier(
            uri=document.uri, version=document.version
        )
        return types.WorkspaceEdit(
            document_changes=[types.TextDocumentEdit(text_document=identifier, edits=[edit])]
        )
    return types.WorkspaceEdit(changes={document.uri: [edit]})

"""``textDocument/inlineCompletion``: the active backend's model writes at the cursor.

The document is the editor's synced copy (unsaved edits included). The position comes in the
encoding negotiated at ``initialize`` and is converted with pygls' codec. ``$/cancelRequest``
cancels the handler's task, which closes the stream to the model at once (pygls answers
-32800).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from lsprotocol import types

from sage_lsp.completion.engine import CompletionEngine, Cursor
from sage_lsp.core.errors import BackendError
from sage_lsp.protocol import InvalidParams
from sage_lsp.server.errors import rpc_error

if TYPE_CHECKING:
    from sage_lsp.server.app import SageServer

log = logging.getLogger(__name__)

_ENGINES: WeakKeyDictionary[SageServer, CompletionEngine] = WeakKeyDictionary()
"""Each server's engine (and so its cache)."""


async def inline_completion(
    server: SageServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    """One item with the model's text at the cursor; none when the setting is off or the model
    wrote nothing."""
    await server.configured()
    session = server.session
    settings = session.settings.completion
    if not settings.enabled:
        return types.InlineCompletionList(items=[])
    uri = params.text_document.uri
    try:
        lines = list(server.workspace.get_text_document(uri).lines)
    except OSError as exc:  # not open, and not readable on disk
        raise rpc_error(
            InvalidParams(f"textDocument: cannot read {uri}: {exc.strerror}"),
            types.TEXT_DOCUMENT_INLINE_COMPLETION,
        ) from None
    position = server.workspace.position_codec.position_from_client_units(lines, params.position)
    cursor = Cursor.at(lines, position.line, position.character, settings)
    engine = _ENGINES.setdefault(server, CompletionEngine())
    try:
        text = await engine.complete(await session.backend(), cursor, settings)
    except BackendError as exc:
        session.report(exc)
        raise rpc_error(exc, types.TEXT_DOCUMENT_INLINE_COMPLETION) from None
    items = [types.InlineCompletionItem(insert_text=text)] if text else []
    return types.InlineCompletionList(items=items)

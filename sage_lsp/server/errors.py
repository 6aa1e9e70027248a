"""Map sage-lsp's error family to the JSON-RPC errors of protocol v1, in this one place."""

from __future__ import annotations

from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from sage_lsp import protocol
from sage_lsp.core.errors import ErrorKind, SageError, ServiceFailure


def rpc_error(exc: SageError, method: str) -> JsonRpcException:
    """The JSON-RPC error for a failure of ``method``.

    -32602 naming the field for something the client or the user gave (params, a setting, a
    model or index name), -32003 for a model service that failed (its merge included), -32002
    for a model that is not there, -32001 for every other backend failure.
    """
    if exc.kind is ErrorKind.INVALID:
        return JsonRpcInvalidParams(f"invalid params for {method}: {exc}")
    if isinstance(exc, ServiceFailure):
        return JsonRpcException(
            message=str(exc),
            code=protocol.SERVICE_FAILED,
            data={"logPath": None, "logTail": [], "exitCode": None, **exc.details},
        )
    if exc.kind is ErrorKind.MODEL_NOT_FOUND:
        return JsonRpcException(
            message=str(exc),
            code=protocol.MODEL_NOT_FOUND,
            data={"name": None, "searched": [], **exc.details, "hint": exc.hint},
        )
    return JsonRpcException(
        message=str(exc),
        code=protocol.BACKEND_UNAVAILABLE,
        data={"kind": exc.kind.value, "hint": exc.hint},
    )

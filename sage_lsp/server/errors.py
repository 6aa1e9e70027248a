"""Map sage-lsp's failures to the JSON-RPC errors of protocol v1."""

from __future__ import annotations

from typing import Any

from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from sage_lsp import protocol
from sage_lsp.backends.base import BackendError, ErrorKind


def rpc_error(exc: BackendError) -> JsonRpcException:
    """The JSON-RPC error for a backend failure.

    -32003 for a service that failed to start (a failed merge included), -32002 for a model
    that is not there, -32001 for every other backend failure.
    """
    if exc.kind is ErrorKind.SERVICE_FAILED or "logTail" in exc.details:  # a failed merge too
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


def invalid_params(exc: Exception, method: str) -> JsonRpcException:
    """-32602 with the message naming the field."""
    return JsonRpcInvalidParams(f"invalid params for {method}: {exc}")


def check_no_params(params: Any, method: str) -> None:
    """Accept ``{}`` or absent params; anything else is -32602."""
    try:
        protocol.from_wire(protocol.NoParams, params)
    except protocol.InvalidParams as exc:
        raise invalid_params(exc, method) from None

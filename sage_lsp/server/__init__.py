"""The language server: pygls over JSON-RPC, one handler module per ``sage/*`` method group."""

"""``python -m sage_lsp`` starts the language server on stdio (``--tcp`` for TCP)."""

from sage_lsp.server.start import serve

serve()

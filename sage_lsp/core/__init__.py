"""The bottom of sage-lsp's import graph: the error family and the types every layer shares.

Nothing here imports any other part of sage_lsp.
"""

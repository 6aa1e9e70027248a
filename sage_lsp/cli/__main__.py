"""``python -m sage_lsp.cli`` runs the ``sage`` command."""

from sage_lsp.cli.app import main

main()

"""sage-lsp: chat with your own finetuned code model from the editor and the terminal."""

__version__ = "0.1.0"

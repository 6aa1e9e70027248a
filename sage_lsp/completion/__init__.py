"""Inline completion: fill-in-the-middle templates, the block-end stop, the cache, and the
engine that asks the active backend for the text at the cursor."""

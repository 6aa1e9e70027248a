"""The ``sage`` command line."""

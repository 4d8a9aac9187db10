"""Subcommands of the ``poolswap`` CLI, one module each (see :mod:`poolswap.cli`)."""

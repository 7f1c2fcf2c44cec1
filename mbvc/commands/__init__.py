"""Subcommands of the ``mbvc`` console script: one module each, with ``add_arguments`` and ``run``."""

"""The ``m3ret`` command line (``engine.cli.main``); one module per subcommand."""

from engine.cli.main import main

__all__ = ["main"]

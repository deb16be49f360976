"""Frozen entry point of the ``m3ret`` command line (console executable in the packaged app)."""

import sys

from engine.cli import main

if __name__ == "__main__":
    sys.exit(main())

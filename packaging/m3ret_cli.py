"""Frozen entry point of the ``m3ret`` command line (console executable in the packaged app)."""

import multiprocessing
import sys

from engine.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # the indexer's worker processes re-run this executable
    sys.exit(main())

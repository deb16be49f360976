"""Frozen entry point of the ``m3ret-app`` desktop application (windowed executable in the packaged app)."""

import sys

from app.main import main

if __name__ == "__main__":
    sys.exit(main())

"""M3Ret engine: readers, preprocessing, ONNX encoder, catalog, vector index, indexer, search, CLI.

Never imports torch, PySide6 or vtk (checked by ``tests/test_import_rules.py``).
"""

import os

# Privacy: onnxruntime >= 1.2x writes a device id and a telemetry event store under ~/.cache/Microsoft when it is
# imported unless this is set. Every engine import (and so the app and the trainer) passes through here first.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"

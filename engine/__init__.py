"""M3Ret engine: readers, preprocessing, ONNX encoder, catalog, vector index, indexer, search, CLI.

Never imports torch, PySide6 or vtk (checked by ``tests/test_import_rules.py``).
"""

__version__ = "0.1.0"

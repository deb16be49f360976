"""``m3ret rebuild-index``: the vector index is rebuilt from the embeddings stored in the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.library import INDEX_FILE
from engine.vectors import VectorIndex
from tests.engine.cli.small_library import lib, run_json  # noqa: F401 (fixture)


def test_rebuild_index(lib: str, capsys: pytest.CaptureFixture[str]) -> None:
    (Path(lib) / INDEX_FILE).unlink()
    doc = run_json(capsys, "rebuild-index", "--library", lib, "--json")
    assert doc["vectors"] == 6 and doc["model_id"] == "test-pooling-32"
    assert len(VectorIndex.load(Path(lib) / INDEX_FILE, 32)) == 6

"""``m3ret show ID``: every field of one case; unknown ids exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli.main import main
from tests.engine.cli.small_library import lib, run_json  # noqa: F401 (fixture)


def test_show(lib: str, capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "show", "2", "--library", lib, "--json")
    assert doc["id"] == 2 and doc["kind"] == "image2d" and doc["embedded_by"] == "test-pooling-32"
    assert Path(doc["source_paths"][0]).is_file() and doc["thumbnail_bytes"] > 0
    assert main(["show", "42", "--library", lib]) == 1
    assert "no case with id 42" in capsys.readouterr().err

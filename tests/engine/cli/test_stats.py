"""``m3ret stats``: counts per modality and kind, vectors, failures, model."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli.main import main
from tests.engine.cli.small_library import lib, run_json  # noqa: F401 (fixture)


def test_stats(lib: str, capsys: pytest.CaptureFixture[str]) -> None:
    stats = run_json(capsys, "stats", "--library", lib, "--json")
    assert (stats["cases"], stats["vectors"], stats["failures"], stats["files"]) == (6, 6, 1, 6)
    assert stats["by_modality"] == {"XR": 6} and stats["by_kind"] == {"image2d": 6}
    assert stats["model_id"] == "test-pooling-32" and stats["embed_dim"] == 32
    assert main(["stats", "--library", lib]) == 0
    assert "cases:     6" in capsys.readouterr().out


def test_missing_library_is_reported_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["stats"], ["list"], ["show", "1"], ["search", "--case", "1"], ["failures"], ["rebuild-index"]):
        assert main([*command, "--library", str(tmp_path / "typo")]) == 1
        assert "no library here" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()

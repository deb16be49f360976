"""``m3ret evaluate``: table and JSON with model and raw-pixel rows, the PNG plot, errors and exit codes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cli.main import main
from tests.engine.cli.small_library import lib, run_json  # noqa: F401 (fixture)


def _label_everything(lib: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:  # noqa: F811
    csv_file = tmp_path / "files" / "labels.csv"
    csv_file.write_text("path,label\ndisc,round\nframe,square\n", encoding="utf-8")
    assert run_json(capsys, "labels", "import", str(csv_file), "--library", lib, "--json")["cases_labelled"] == 6


def test_evaluate_json_table_and_plot(lib: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    _label_everything(lib, capsys, tmp_path)
    doc = run_json(capsys, "evaluate", "--k", "1,2", "--library", lib, "--json")
    assert doc["ks"] == [1, 2] and doc["n_cases"] == 6
    for method in ("model", "raw_pixels"):
        assert set(doc["methods"][method]["per_label"]) == {"round", "square"}
        assert doc["methods"][method]["overall"]["n_scored"] == 6
        assert set(doc["methods"][method]["overall"]) >= {"P@1", "P@2", "mAP@R"}
    plot = tmp_path / "p_at_k.png"
    assert main(["evaluate", "--library", lib, "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "label round" in out and "label square" in out and "modality XR" in out and "P@10 raw" in out
    image = cv2.imread(str(plot))
    assert image is not None and image.shape[0] > 100
    # two series of bars: both legend colours are drawn
    assert (np.abs(image.astype(int) - (178, 114, 0)).sum(axis=2) == 0).sum() > 50
    assert (np.abs(image.astype(int) - (0, 159, 230)).sum(axis=2) == 0).sum() > 50


def test_evaluate_errors(lib: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["evaluate", "--library", lib]) == 1
    assert "fewer than two cases have a 'label'" in capsys.readouterr().err
    assert main(["evaluate", "--k", "0", "--library", lib]) == 2
    assert main(["evaluate", "--k", "a", "--library", lib]) == 2

"""``m3ret explain``: PNGs + JSON for a 2D pair and for NIfTI volumes with a planted slice; errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from engine.cli.main import main
from tests.engine.cli.small_library import lib, run_json  # noqa: F401 (fixture)
from tests.engine.test_explain import smooth_random_image


def test_explain_2d_pair_writes_frames_and_heatmaps(lib: str, tmp_path: Path, tiny_model: Path,  # noqa: F811
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "why"
    doc = run_json(capsys, "explain", "--query-case", "1", "--case", "2", "--out", str(out), "--grid", "4",
                   "--library", lib, "--model", str(tiny_model), "--json")
    assert doc["files"] == ["query.png", "query_heatmap.png", "result.png", "result_heatmap.png"]
    assert doc["result"]["case_id"] == 2 and doc["grid"] == 4 and -1.0 <= doc["heatmap_score"] <= 1.0 + 1e-6
    assert json.loads((out / "explain.json").read_text())["files"] == doc["files"]
    plain, heat = cv2.imread(str(out / "query.png")), cv2.imread(str(out / "query_heatmap.png"))
    assert plain.shape == heat.shape and (plain != heat).any()


def test_explain_volume_finds_the_planted_slice(tmp_path: Path, tiny_model: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(11)
    query = np.stack([smooth_random_image(rng, (48, 48)) for _ in range(12)], axis=-1)  # X Y Z (NIfTI order)
    result = np.stack([smooth_random_image(rng, (48, 48)) for _ in range(20)], axis=-1)
    result[..., 13] = query[..., 6]
    (tmp_path / "files").mkdir()
    for name, vol in (("query.nii.gz", query), ("result.nii.gz", result)):
        nib.save(nib.Nifti1Image(vol.astype(np.float32), np.eye(4)), str(tmp_path / "files" / name))
    library = str(tmp_path / "lib")
    assert main(["index", str(tmp_path / "files" / "result.nii.gz"), "--library", library, "--model",
                 str(tiny_model), "--workers", "0", "--json"]) == 0
    capsys.readouterr()
    out = tmp_path / "why"
    doc = run_json(capsys, "explain", str(tmp_path / "files" / "query.nii.gz"), "--case", "1", "--position", "6",
                   "--out", str(out), "--library", library, "--model", str(tiny_model), "--json")
    # the NIfTI reader reorients to LPS+: with an identity (RAS) affine the slice axis keeps its order
    assert doc["query"]["n_positions"] == 12 and doc["result"]["n_positions"] == 20
    assert doc["result"]["position"] == 13 and doc["matching"]["best_pair"] == {
        "query": 6, "result": 13, "score": doc["matching"]["best_pair"]["score"]}
    assert (out / "profile.png").is_file()


def test_explain_errors(lib: str, tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str],  # noqa: F811
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("M3RET_MODEL", str(tiny_model))
    out = str(tmp_path / "x")
    assert main(["explain", "--case", "2", "--out", out, "--library", lib]) == 2
    assert main(["explain", "--query-case", "1", "--case", "99", "--out", out, "--library", lib]) == 1
    assert "no case with id 99" in capsys.readouterr().err
    assert main(["explain", "--query-case", "1", "--case", "2", "--position", "5", "--out", out,
                 "--library", lib]) == 2
    assert main(["explain", str(tmp_path / "nope.png"), "--case", "2", "--out", out, "--library", lib]) == 2

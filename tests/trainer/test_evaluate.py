"""trainer.evaluate end to end: a tiny manifest of real image files, an oracle embedder, reports on disk, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from engine.preprocess import DEFAULT_PARAMS, PreprocessParams
from tests.trainer.test_baselines import _mean_colour_model
from trainer.baselines import RawPixelEmbedder
from trainer.evaluate import evaluate, main, write_report
from trainer.manifest import ManifestRow, load_manifest, write_manifest

# label key -> the quadrant (0..3: top-left, top-right, bottom-left, bottom-right) that is bright
QUADRANT = {"d1/a": 0, "d1/b": 1, "d2/a": 2, "d2/b": 3}
MODALITY = {"d1": "xray", "d2": "mri"}


def _quadrant_image(quadrant: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    image = rng.integers(0, 60, (size, size)).astype(np.uint8)  # H W noise
    half = size // 2
    row, col = divmod(quadrant, 2)
    image[row * half : (row + 1) * half, col * half : (col + 1) * half] += 150
    return image


class QuadrantOracle:
    """Knows how the test images encode their label: one-hot of the brightest quadrant (a perfect embedder)."""

    params = DEFAULT_PARAMS
    batch_size = 4

    def embed(self, clips: np.ndarray) -> np.ndarray:
        b, _, _, h, w = clips.shape
        quads = clips.mean(axis=(1, 2)).reshape(b, 2, h // 2, 2, w // 2).mean(axis=(2, 4)).reshape(b, 4)
        return np.eye(4, dtype=np.float32)[quads.argmax(axis=1)]  # B 4


@pytest.fixture
def tiny_manifest(tmp_path: Path) -> Path:
    """12 PNGs (2 datasets x 2 labels x 3), 2 NIfTI volumes of d1/b, one broken file; split test, plus train rows."""
    rng = np.random.default_rng(0)
    rows = []
    for key, quadrant in QUADRANT.items():
        dataset, label = key.split("/")
        for i in range(3):
            path = tmp_path / "data" / dataset / label / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), _quadrant_image(quadrant, rng))
            rows.append(ManifestRow(path, MODALITY[dataset], dataset, label, "test"))
            if i == 0:  # rows of another split must be left out
                rows.append(ManifestRow(path, MODALITY[dataset], dataset, label, "train"))
    for i in range(2):
        volume = np.stack([_quadrant_image(1, rng) for _ in range(8)], axis=-1).astype(np.int16)  # X Y Z
        path = tmp_path / "data" / "d1" / "b" / f"vol{i}.nii.gz"
        nib.save(nib.Nifti1Image(volume, np.eye(4)), path)
        rows.append(ManifestRow(path, "ct", "d1", "b", "test"))
    broken = tmp_path / "data" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    rows.append(ManifestRow(broken, "xray", "d1", "a", "test"))
    return write_manifest(rows, tmp_path / "manifest.csv")


def test_oracle_scores_one_and_reports_are_written(tiny_manifest: Path, tmp_path: Path) -> None:
    results = evaluate({"oracle": QuadrantOracle(), "raw": RawPixelEmbedder()}, tiny_manifest, "test",
                       cache_dir=tmp_path / "cache", workers=0)
    assert results["n_rows"] == 15 and results["n_clips"] == 14
    assert results["modalities"] == {"ct": 2, "mri": 6, "xray": 6}
    assert [Path(f["path"]).name for f in results["failures"]] == ["broken.png"]

    oracle = results["methods"]["oracle"]["metrics"]
    assert oracle["overall"]["P@1"] == 1.0 and oracle["overall"]["mAP@R"] == 1.0
    assert {m: row["P@1"] for m, row in oracle["per_modality"].items()} == {"ct": 1.0, "mri": 1.0, "xray": 1.0}
    # d1/b holds 3 PNGs + 2 volumes (R = 4): P@5 = 4/5 for those 5 queries, R/5 = 2/5 for the other 9
    assert oracle["overall"]["P@5"] == pytest.approx((5 * 4 / 5 + 9 * 2 / 5) / 14)
    assert results["methods"]["oracle"]["dim"] == 4 and results["methods"]["raw"]["dim"] == 3072
    assert 0.0 <= results["methods"]["raw"]["metrics"]["overall"]["P@1"] <= 1.0

    md_path, json_path = write_report(results, tmp_path / "out")
    saved = json.loads(json_path.read_text(encoding="utf-8"))  # strict JSON: NaN written as null
    assert saved["methods"]["oracle"]["metrics"]["overall"]["P@1"] == 1.0
    text = md_path.read_text(encoding="utf-8")
    assert "| oracle | all | 1.000 | " in text and "| raw | ct |" in text and "| oracle | d2 |" in text


def test_cli_writes_results(tiny_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    code = main(["--manifest", str(tiny_manifest), "--split", "test", "--baselines", "raw_pixels",
                 "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--workers", "0"])
    assert code == 0
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert list(saved["methods"]) == ["raw_pixels"] and saved["n_clips"] == 14
    assert "| raw_pixels | xray |" in (out / "results.md").read_text(encoding="utf-8")
    assert "results.md" in capsys.readouterr().out


def test_cli_with_an_onnx_model(tiny_manifest: Path, tmp_path: Path) -> None:
    """Baselines follow the model's preprocessing (here 64 px), so every method sees the same clips."""
    model = _mean_colour_model(tmp_path / "model.onnx", PreprocessParams(size=64))
    out = tmp_path / "cli"
    assert main(["--model", str(model), "--baselines", "raw_pixels", "--manifest", str(tiny_manifest),
                 "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--workers", "0"]) == 0
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert list(saved["methods"]) == ["test-mean-colour", "raw_pixels"]
    assert {m["preprocess"]["size"] for m in saved["methods"].values()} == {64}
    assert saved["methods"]["test-mean-colour"]["model_id"] == "test-mean-colour"
    assert saved["methods"]["test-mean-colour"]["dim"] == 3 and saved["n_clips"] == 14


def test_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--manifest", str(tmp_path / "absent.csv"), "--baselines", "raw_pixels", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "absent.csv: manifest not found" in err
    manifest = str(tmp_path / "manifest.csv")  # given, so the check does not depend on the shared data being here
    assert main(["--model", str(tmp_path / "none.onnx"), "--manifest", manifest, "--out", str(tmp_path)]) == 1
    assert "none.onnx: model file not found" in capsys.readouterr().err


def test_shared_data_rows(shared_data: Path, tmp_path: Path) -> None:
    """Real shared rows of every modality (videos left out: slow to decode), scored by the raw-pixel baseline."""
    rows = [r for r in load_manifest(shared_data / "manifest.csv", splits="test") if r.path.suffix != ".mp4"]
    picked = [r for m in ("xray", "mri", "ultrasound", "ct") for r in [r for r in rows if r.modality == m][:8]]
    results = evaluate({"raw": RawPixelEmbedder()}, picked, "test", cache_dir=tmp_path, workers=0)
    metrics = results["methods"]["raw"]["metrics"]
    assert results["n_clips"] == len(picked) and set(metrics["per_modality"]) == {"xray", "mri", "ultrasound", "ct"}
    assert all(0.0 <= row["P@1"] <= 1.0 for row in metrics["per_dataset"].values() if row["n_scored"])

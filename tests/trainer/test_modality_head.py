"""trainer.modality_head: fit the modality head on a manifest's train split, measure it on the test split, store it
in the model file (and its int8 copy); ``m3ret-train fit-modality``. Phantom PNGs stand in for two modalities."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.encoder import Encoder
from engine.model_format import META_MODALITY_HEAD, META_MODEL_ID
from trainer.cli import main as train_main
from trainer.export import read_metadata
from trainer.manifest import ManifestRow, write_manifest
from trainer.modality_head import fit_modality_head, fit_softmax, sample_rows
from tests.engine.conftest import build_pooling_model, write_phantoms

MODALITY_OF_FAMILY = {"disc": "ultrasound", "frame": "xray"}


@pytest.fixture()
def phantom_manifest(tmp_path: Path) -> Path:
    rows = []
    for split, n, seed in (("train", 6, 0), ("test", 3, 100)):
        for path, family in write_phantoms(tmp_path / split, n, first_seed=seed).items():
            rows.append(ManifestRow(path, MODALITY_OF_FAMILY[family], "phantoms", family, split))
    rows.append(ManifestRow(tmp_path / "train" / "x.png", "hologram", "phantoms", "x", "train"))  # unknown: left out
    return write_manifest(rows, tmp_path / "manifest.csv")


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    path = build_pooling_model(tmp_path / "models" / "m.onnx")
    shutil.copy(path, path.with_name("m.int8.onnx"))  # stands in for the quantised copy (same model id)
    return path


def test_fit_stores_the_head_in_the_model_and_its_int8_copy(phantom_manifest: Path, model: Path,
                                                            tmp_path: Path) -> None:
    report = fit_modality_head(model, phantom_manifest, cache_dir=tmp_path / "cache", workers=0)
    assert report.head.classes == ("US", "XR") and report.train_counts == {"US": 6, "XR": 6}
    assert report.test_counts == {"US": 3, "XR": 3} and report.test_accuracy["all"] == 1.0
    assert report.written == [str(model), str(model.with_name("m.int8.onnx"))]
    for path in (model, model.with_name("m.int8.onnx")):
        meta = read_metadata(path)
        assert META_MODALITY_HEAD in meta and meta[META_MODEL_ID] == "test-pooling-32"  # weights and id unchanged
        head = Encoder(path, threads=1).modality_head
        assert head is not None and head.info["test_accuracy"]["all"] == 1.0
    assert "US" in report.table() and report.table().splitlines()[-1].startswith("all")


def test_cli_fit_modality(phantom_manifest: Path, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("M3RET_CACHE", str(tmp_path / "cache"))
    assert train_main(["fit-modality", "--model", str(model), "--manifest", str(phantom_manifest), "--dry-run",
                       "--test-per-class", "2"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[2] for line in out.splitlines()[1:4]] == ["2", "2", "4"]  # test rows: US, XR, all
    assert out.splitlines()[0].split() == ["modality", "train", "test", "accuracy", "confident"]
    assert "written: nothing (--dry-run)" in out and META_MODALITY_HEAD not in read_metadata(model)
    assert train_main(["fit-modality", "--model", str(tmp_path / "absent.onnx"),
                       "--manifest", str(phantom_manifest)]) == 1


def test_sample_rows_caps_each_modality(tmp_path: Path) -> None:
    rows = [ManifestRow(tmp_path / f"{i}.png", "ct" if i % 3 else "mri", "d", "l", "train") for i in range(30)]
    picked = sample_rows(rows, per_class=5)
    assert len(picked) == 10 and sum(r.modality == "mri" for r in picked) == 5
    assert picked == sample_rows(rows, per_class=5)  # seeded: the same rows (and cache file) every time


def test_fit_softmax_separates_crowded_embeddings() -> None:
    """Embeddings that crowd around one direction (cosines > 0.99) still separate: features are standardised."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=16)
    offsets = rng.normal(size=(2, 16)) * 0.05
    x = np.concatenate([base + offsets[c] + rng.normal(size=(40, 16)) * 0.01 for c in (0, 1)])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.repeat([0, 1], 40)
    weights, bias = fit_softmax(x, y, 2)
    logits = x @ weights.T + bias
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    assert (probs.argmax(axis=1) == y).all() and probs.max(axis=1).min() > 0.9

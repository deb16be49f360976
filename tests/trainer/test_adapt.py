"""trainer.adapt end to end on files the test writes: validation split by patient, a few steps, checkpoints, export."""

from __future__ import annotations

from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import torch

from engine.encoder import Encoder
from trainer.adapt import adapt, validation_mask
from trainer.config import load_config
from trainer.export import export_checkpoint
from trainer.manifest import ManifestRow, write_manifest

from tests.trainer.test_evaluate import _quadrant_image




def _manifest(folder: Path) -> Path:
    """Train rows: 2 labels x 8 X-ray PNGs (one patient each) and 6 CT volumes; 4 MRI rows that must be left out."""
    rng = np.random.default_rng(0)
    rows = []
    for label, quadrant in (("a", 0), ("b", 3)):
        for i in range(8):
            path = folder / "xray" / label / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), _quadrant_image(quadrant, rng, size=48))
            rows.append(ManifestRow(path, "xray", "cxr", label, "train", f"p-{label}{i}"))
    for i in range(6):
        volume = np.stack([_quadrant_image(i % 4, rng, size=48) for _ in range(8)], axis=-1).astype(np.int16)  # X Y Z
        path = folder / "ct" / f"v{i}.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(volume, np.eye(4)), path)
        rows.append(ManifestRow(path, "ct", "vols", "x" if i % 2 else "y", "train", f"ct{i}"))
    for i in range(4):
        path = folder / "mri" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), _quadrant_image(1, rng, size=48))
        rows.append(ManifestRow(path, "mri", "brain", "t", "train", ""))
    return write_manifest(rows, folder / "manifest.csv")


def test_validation_split_keeps_patients_whole() -> None:
    patients = ["p1", "p1", "p2", "p3", "", ""] + ["block"] * 30
    paths = [f"f{i}" for i in range(len(patients))]
    mask = validation_mask(patients, paths, fraction=0.5, seed=3)
    assert mask[0] == mask[1]  # one patient, one side
    block = mask[6:]
    assert 0 < block.sum() < len(block)  # a block id (> 20 items) is split by row, not kept whole


def test_adapt_runs_checkpoints_and_exports(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "data")
    cfg = load_config("imagenet_lite", [
        f"data.manifest={manifest}", f"data.cache_dir={tmp_path / 'cache'}", "data.read_workers=0",
        "data.batch_size_2d=4", "data.val_fraction=0.4", "model.img_size=64", "model.trainable_blocks=2",
        "simdino.global_size=48", "simdino.local_size=32", "simdino.hidden_dim=32", "simdino.out_dim=16",
        "train.steps=2", "train.val_every=1", "whitening.enabled=true", "whitening.dim=8",
    ])
    best = adapt(cfg, tmp_path / "run")
    header, *rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and "val_score" in header
    assert best.is_file() and (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 2
    report = export_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", tmp_path / "m.onnx", int8=False)
    assert report["whitening"] and report["embed_dim"] == 8
    encoder = Encoder(tmp_path / "m.onnx")
    assert encoder.embed_dim == 8 and encoder.params.size == 64 and encoder.model_id == report["model_id"]

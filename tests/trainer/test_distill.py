"""distilled_vit: teacher targets from an exported M3Ret model, and one CPU step that reduces the distillation loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.encoder import Encoder
from trainer.config import load_config
from trainer.objectives.distill import DistillHead
from trainer.synthetic import SyntheticClips
from trainer.teacher_targets import teacher_targets
from trainer.train import PretrainModel, pretrain

TEACHER = Path(__file__).resolve().parents[2] / "resources" / "models" / "m3ret-default.onnx"


def test_teacher_targets_are_the_teacher_embeddings_and_are_cached(tmp_path: Path) -> None:
    data = SyntheticClips(6, size=32)
    targets = teacher_targets(data, TEACHER, cache_dir=tmp_path)
    encoder = Encoder(TEACHER)
    assert targets.shape == (6, encoder.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(targets, axis=1), 1.0, atol=1e-4)
    assert len(list(tmp_path.glob("teacher-*.npy"))) == 1
    np.testing.assert_array_equal(teacher_targets(data, TEACHER, cache_dir=tmp_path), targets)  # from the cache
    assert float(targets[0] @ targets[1]) < 0.9999  # different clips, different vectors


def test_one_step_reduces_the_distillation_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    cfg = load_config("smoke", ["objective=mae", f"distill.teacher={TEACHER}"])
    model = PretrainModel(cfg)
    assert isinstance(model.distill, DistillHead)
    dim = Encoder(TEACHER).embed_dim
    assert model.distill.proj.out_features == dim
    data = SyntheticClips(4, size=32)
    batch = torch.from_numpy(data.batch([0, 2]))  # two 2D clips
    target = torch.nn.functional.normalize(torch.randn(2, dim), dim=-1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model(distill_input=batch, distill_target=target)["loss_distill"]
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = model(distill_input=batch, distill_target=target)["loss_distill"]
    assert float(after) < float(before.detach()) - 1e-3


def test_pretrain_with_a_teacher_logs_the_distillation_loss(tmp_path: Path) -> None:
    cfg = load_config("smoke", ["train.steps=2", f"distill.teacher={TEACHER}", f"data.cache_dir={tmp_path}"])
    pretrain(cfg, tmp_path / "run")
    header, *rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    column = header.split(",").index("loss_distill")
    assert len(rows) == 2 and all(float(r.split(",")[column]) > 0 for r in rows)

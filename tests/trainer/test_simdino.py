"""SimDINO: coding rate, distance term, EMA teacher, multi-crop views, and a few steps reduce the loss."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.augment import IntensitySpec, MultiCropAugment, ViewSpec, gaussian_blur, intensity_augment
from trainer.config import load_config
from trainer.objectives.simdino import coding_rate, simdino_loss
from trainer.synthetic import SyntheticClips
from trainer.train import PretrainModel, build_augment, build_optimizer, train_step


def test_coding_rate_matches_formula_and_prefers_spread_features():
    d, eps = 8, 0.5
    spread = torch.eye(d)  # n = d orthonormal features
    expected = 0.5 * d * math.log(1 + d / (d * eps**2))
    assert coding_rate(spread, eps).item() == pytest.approx(expected, rel=1e-5)
    collapsed = torch.zeros(d, d)
    collapsed[:, 0] = 1.0  # every sample the same direction
    assert coding_rate(collapsed, eps) < coding_rate(spread, eps)


def test_loss_terms():
    torch.manual_seed(0)
    z = [torch.randn(6, 16) for _ in range(3)]
    total, distance, rate = simdino_loss(z, [z[1], z[0]], n_global=2, eps=0.5, gamma=0.1)
    assert distance.item() > 0  # view 2 (local) differs from both teachers
    same = [z[0], z[0]]
    _, zero_distance, _ = simdino_loss(same, same, n_global=2, eps=0.5, gamma=0.1)
    assert zero_distance.item() == pytest.approx(0.0, abs=1e-6)
    assert total.item() == pytest.approx(distance.item() - 0.1 * rate.item(), rel=1e-5)
    # squared distance of unit vectors lies in [0, 4]
    assert 0.0 <= distance.item() <= 4.0


def test_teacher_is_frozen_and_follows_by_ema():
    cfg = load_config("smoke", ["objective=simdino"])
    torch.manual_seed(0)
    model = PretrainModel(cfg)
    head = model.simdino
    assert not any(p.requires_grad for p in head.teacher_encoder.parameters())
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in head.teacher_encoder.parameters()]
    head.update_teacher(model.encoder, momentum=1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, head.teacher_encoder.parameters()))
    head.update_teacher(model.encoder, momentum=0.5)
    student = list(model.encoder.parameters())
    for old, new, s in zip(before, head.teacher_encoder.parameters(), student):
        torch.testing.assert_close(new, 0.5 * old + 0.5 * s)


@pytest.mark.parametrize(("frames", "g_frames", "l_frames"), [(2, 2, 2), (16, 8, 4)])
def test_multi_crop_views(frames, g_frames, l_frames):
    augment = MultiCropAugment(ViewSpec(32, 8, (0.4, 1.0)), ViewSpec(16, 4, (0.1, 0.4)), ViewSpec(32, 16, (0.6, 1.0)),
                               n_global=2, n_local=3)
    batch = torch.rand(2, 3, frames, 64, 64)
    globals_, locals_ = augment.multi_crop(batch)
    assert [g.shape for g in globals_] == [(2, 3, g_frames, 32, 32)] * 2
    assert [v.shape for v in locals_] == [(2, 3, l_frames, 16, 16)] * 3
    assert all(0.0 <= float(v.min()) and float(v.max()) <= 1.0 for v in globals_ + locals_)
    assert not torch.equal(globals_[0], globals_[1])
    assert augment.mae(batch).shape == (2, 3, frames, 32, 32)


def test_intensity_augment_keeps_grey_grey_and_range():
    torch.manual_seed(0)
    grey = torch.rand(1, 2, 16, 16).repeat(3, 1, 1, 1)
    always = IntensitySpec(p_gamma=1, p_contrast=1, p_noise=0, p_blur=1, p_flip=1)
    out = intensity_augment(grey, always)
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])  # no colour jitter
    assert 0.0 <= out.min() and out.max() <= 1.0
    flat = torch.full((3, 1, 8, 8), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, 1.0), flat)


@pytest.mark.parametrize("frames", [2, 16])
def test_training_steps_reduce_the_loss_on_fixed_views(frames):
    cfg = load_config("smoke", ["objective=simdino", "optim.lr=0.001", "train.steps=1000"])
    torch.manual_seed(0)
    model = PretrainModel(cfg)
    optimizer, scheduler = build_optimizer(model, cfg)
    clips = SyntheticClips(32, 32)
    batch = torch.from_numpy(clips.batch([i for i in range(32) if clips.length(i) == frames][:8]))
    torch.manual_seed(1)
    globals_, locals_ = build_augment(cfg).multi_crop(batch)
    losses = []
    for _ in range(6):
        out = train_step(model, optimizer, scheduler, {"global_views": globals_, "local_views": locals_}, 3.0, 0.99, True)
        losses.append(out["loss_simdino"])
    assert losses[-1] < losses[0] - 0.05, losses

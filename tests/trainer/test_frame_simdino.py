"""trainer.objectives.frame_simdino: one CPU step reduces the loss on a fixed batch; teacher and anchor frozen."""

from __future__ import annotations

import torch

from trainer.frame_encoder import FrameClipEncoder
from trainer.objectives.frame_simdino import FrameSimDINO


def _model(anchor_weight: float) -> FrameSimDINO:
    torch.manual_seed(0)
    encoder = FrameClipEncoder("efficientnet-lite0", pretrained=True)
    encoder.freeze_all_but_last(3)
    return FrameSimDINO(encoder, hidden_dim=64, out_dim=16, anchor_weight=anchor_weight)


def _views(seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(8, 3, 48, 48, generator=g) for _ in range(2)], [torch.rand(8, 3, 32, 32, generator=g)]


def test_one_step_reduces_the_loss_on_a_fixed_batch() -> None:
    model = _model(anchor_weight=1.0).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    global_views, local_views = _views(0)
    before = model(global_views, local_views)
    optimizer.zero_grad()
    before["loss"].backward()
    optimizer.step()
    with torch.no_grad():
        after = model(global_views, local_views)
    assert float(after["loss"]) < float(before["loss"].detach()) - 1e-3  # a clear drop, not float noise
    assert {"distance", "coding_rate", "anchor", "loss"} <= set(before)


def test_teacher_follows_by_ema_and_the_anchor_never_moves() -> None:
    model = _model(anchor_weight=1.0).train()
    anchor_before = [p.clone() for p in model.anchor.parameters()]
    teacher_before = model.teacher_head.mlp[0].weight.clone()
    with torch.no_grad():
        for p in model.student_head.parameters():
            p.add_(1.0)
    model.update_teacher(momentum=0.5)
    teacher_after = model.teacher_head.mlp[0].weight
    student = model.student_head.mlp[0].weight
    torch.testing.assert_close(teacher_after, 0.5 * teacher_before + 0.5 * student)
    assert all(torch.equal(a, b) for a, b in zip(anchor_before, model.anchor.parameters()))
    assert not any(p.requires_grad for p in model.anchor.parameters())


def test_batchnorm_statistics_stay_frozen_in_training() -> None:
    model = _model(anchor_weight=0.0).train()
    bn = model.encoder.backbone._bn1
    running = bn.running_mean.clone()
    global_views, local_views = _views(1)
    model(global_views, local_views)
    assert not bn.training and torch.equal(bn.running_mean, running)

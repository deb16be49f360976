"""SimDINO on frames for the warm-started encoder, with an anchor to the frozen ImageNet network.

Views are single frames ``V 3 S S``: global and local crops of one image, slice or video frame, and of a
neighbouring slice or frame of the same volume or video (an extra positive pair the data gives for free). The
student is the ``FrameClipEncoder`` backbone + a projection head; the teacher is their EMA copy and sees the global
views. Loss (Wu et al. 2025): squared distance between normalised student and teacher projections (each student
view against every other teacher global view) minus ``gamma`` times the coding rate of the student's global
projections; plus ``anchor_weight * (1 - cos(student features, frozen ImageNet features))`` on the first global view,
which keeps what transfers to modalities never trained on (MRI).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from trainer.frame_encoder import FrameClipEncoder, build_backbone
from trainer.objectives.simdino import ProjectionHead, simdino_loss


def freeze_batchnorm(module: nn.Module) -> None:
    """Keep BatchNorm running statistics at their ImageNet values (small CPU batches would only add noise)."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


class FrameSimDINO(nn.Module):
    """Student encoder + head, EMA teacher, frozen anchor backbone; ``forward`` returns the losses."""

    def __init__(
        self,
        encoder: FrameClipEncoder,
        hidden_dim: int = 2048,
        out_dim: int = 256,
        eps: float = 0.5,
        gamma: float = 0.05,
        anchor_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.eps, self.gamma, self.anchor_weight = eps, gamma, anchor_weight
        self.student_head = ProjectionHead(encoder.feature_dim, hidden_dim, out_dim)
        self.teacher_encoder = copy.deepcopy(encoder)
        self.teacher_head = copy.deepcopy(self.student_head)
        self.anchor = build_backbone(encoder.backbone_name, pretrained=True) if anchor_weight > 0 else None
        frozen = list(self.teacher_encoder.parameters()) + list(self.teacher_head.parameters())
        frozen += list(self.anchor.parameters()) if self.anchor is not None else []
        for p in frozen:
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "FrameSimDINO":
        super().train(mode)
        freeze_batchnorm(self)
        for frozen in (self.teacher_encoder, self.anchor):
            if frozen is not None:
                frozen.eval()
        return self

    def anchor_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Frozen ImageNet features ``F C`` of frames in [0, 1]."""
        return self.anchor.extract_features(self.encoder.imagenet_normalise(frames)).mean(dim=(2, 3))

    def forward(
        self, global_views: list[torch.Tensor], local_views: list[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Losses of one batch of views (each ``B 3 S S``): ``loss``, ``distance``, ``coding_rate``, ``anchor``."""
        n_global = len(global_views)
        with torch.no_grad():
            teacher_in = torch.cat(global_views)  # (G B) 3 S S
            teacher = self.teacher_head(self.teacher_encoder.frame_features(teacher_in)).chunk(n_global)
        student_features: list[torch.Tensor] = []
        for group in (global_views, local_views):  # equal sizes run together
            if group:
                student_features.extend(self.encoder.frame_features(torch.cat(group)).chunk(len(group)))
        student = [self.student_head(f) for f in student_features]
        loss, distance, rate = simdino_loss(student, list(teacher), n_global, self.eps, self.gamma)
        out = {"distance": distance, "coding_rate": rate}
        if self.anchor is not None:
            with torch.no_grad():  # the first global view only: half the cost, the same pull
                target = self.anchor_features(global_views[0])  # B C
            anchor = 1 - F.cosine_similarity(student_features[0], target, dim=-1).mean()
            out["anchor"] = anchor
            loss = loss + self.anchor_weight * anchor
        out["loss"] = loss
        return out

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """teacher <- momentum * teacher + (1 - momentum) * student (weights; BN statistics stay frozen)."""
        for student, teacher in ((self.encoder, self.teacher_encoder), (self.student_head, self.teacher_head)):
            for ps, pt in zip(student.parameters(), teacher.parameters()):
                pt.mul_(momentum).add_(ps.detach(), alpha=1 - momentum)

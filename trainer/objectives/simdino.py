"""SimDINO self-distillation (Wu et al. 2025, "Simplifying DINO via Coding Rate Regularization").

A student (the shared encoder + a projection head) sees every view; an EMA teacher sees the global views. The
loss is the squared distance between L2-normalised student and teacher features (each student view against every
other global teacher view) minus ``gamma`` times the coding rate of the student's global features,
``R_eps(Z) = 1/2 logdet(I + d / (n eps^2) Z^T Z)``, which keeps features spread out. No centering, no
sharpening, no prototypes. The coding rate is computed on each rank's local batch.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from trainer.model import VisionTransformer, init_weights


class ProjectionHead(nn.Module):
    """3-layer MLP from the encoder width to ``out_dim`` (outputs are L2-normalised by the loss)."""

    def __init__(self, in_dim: int, hidden_dim: int = 1024, out_dim: int = 256) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, out_dim),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


def coding_rate(z: torch.Tensor, eps: float) -> torch.Tensor:
    """``R_eps(Z) = 1/2 logdet(I_d + d / (n eps^2) Z^T Z)`` for features ``Z`` of shape ``n d``."""
    n, d = z.shape
    with torch.autocast(device_type=z.device.type, enabled=False):  # logdet needs float32
        z = z.float()
        cov = z.T @ z  # d d
        eye = torch.eye(d, device=z.device, dtype=z.dtype)
        return 0.5 * torch.logdet(eye + (d / (n * eps**2)) * cov)


def simdino_loss(
    student: list[torch.Tensor], teacher: list[torch.Tensor], n_global: int, eps: float, gamma: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Total loss, distance term and coding-rate term.

    ``student``: one ``B d`` tensor per view, the first ``n_global`` are the global views; ``teacher``: one per
    global view. Student view i is matched to every teacher view j != i.
    """
    zs = [F.normalize(s.float(), dim=-1) for s in student]
    zt = [F.normalize(t.float(), dim=-1).detach() for t in teacher]
    distances = [
        ((s - t) ** 2).sum(dim=-1).mean() for i, s in enumerate(zs) for j, t in enumerate(zt) if i != j
    ]
    distance = torch.stack(distances).mean()
    rate = torch.stack([coding_rate(z, eps) for z in zs[:n_global]]).mean()
    return distance - gamma * rate, distance, rate


class SimDINOHead(nn.Module):
    """Student projection head + EMA teacher (encoder copy + head copy), with the loss."""

    def __init__(
        self,
        encoder: VisionTransformer,
        hidden_dim: int = 1024,
        out_dim: int = 256,
        eps: float = 0.5,
        gamma: float = 0.1,
    ) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = gamma
        self.student_head = ProjectionHead(encoder.embed_dim, hidden_dim, out_dim)
        self.teacher_encoder = copy.deepcopy(encoder)
        self.teacher_head = copy.deepcopy(self.student_head)
        for p in list(self.teacher_encoder.parameters()) + list(self.teacher_head.parameters()):
            p.requires_grad_(False)

    @torch.no_grad()
    def teacher_features(self, global_views: list[torch.Tensor]) -> list[torch.Tensor]:
        """Teacher projections of the global views (one ``B d`` per view)."""
        x = torch.cat(global_views)  # (V B) 3 T H W
        z = self.teacher_head(self.teacher_encoder.forward_cls(x))
        return list(z.chunk(len(global_views)))

    def student_features(self, encoder: VisionTransformer, views: list[torch.Tensor]) -> list[torch.Tensor]:
        """Student projections, views of equal shape run together."""
        out: list[torch.Tensor] = []
        i = 0
        while i < len(views):
            j = i
            while j < len(views) and views[j].shape == views[i].shape:
                j += 1
            z = self.student_head(encoder.forward_cls(torch.cat(views[i:j])))
            out.extend(z.chunk(j - i))
            i = j
        return out

    def forward(
        self, encoder: VisionTransformer, global_views: list[torch.Tensor], local_views: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """SimDINO loss of one batch: (total, distance, coding rate)."""
        teacher = self.teacher_features(global_views)
        student = self.student_features(encoder, global_views + local_views)
        return simdino_loss(student, teacher, len(global_views), self.eps, self.gamma)

    @torch.no_grad()
    def update_teacher(self, encoder: VisionTransformer, momentum: float) -> None:
        """teacher <- momentum * teacher + (1 - momentum) * student."""
        for student, teacher in ((encoder, self.teacher_encoder), (self.student_head, self.teacher_head)):
            for ps, pt in zip(student.parameters(), teacher.parameters()):
                pt.mul_(momentum).add_(ps.detach(), alpha=1 - momentum)

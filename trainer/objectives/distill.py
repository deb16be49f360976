"""Feature distillation: the ViT's CLS feature, through a linear head, regresses a teacher's embedding.

Used by the ``distilled_vit`` recipe: the teacher is the adapted frame encoder (an exported M3Ret ONNX model), whose
embeddings of every training clip are computed once (``trainer.teacher_targets``). Loss = mean ``1 - cos`` between
the head's output and the teacher vector (both directions free of scale).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer.model import VisionTransformer


class DistillHead(nn.Module):
    """Linear map from the encoder width to the teacher's embedding size, and the cosine loss."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, encoder: VisionTransformer, clips: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``clips`` ``B 3 T H W``, ``targets`` ``B D`` -> scalar loss."""
        student = self.proj(encoder.forward_cls(clips))  # B D
        return (1 - F.cosine_similarity(student.float(), targets.float(), dim=-1)).mean()

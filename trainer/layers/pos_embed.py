"""Factorised learned positional embedding: spatial grid + temporal, summed per token.

The spatial table is learned on the native grid (``img_size / patch`` squared) and bicubically interpolated for
other crop sizes; the temporal table holds ``max_frames / tubelet`` entries and is sliced for shorter clips
(T=2 uses the first entry, T=16 all eight). Slicing keeps T dynamic in the ONNX graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FactorisedPosEmbed(nn.Module):
    """``pos(t, y, x) = spatial[y, x] + temporal[t]``."""

    def __init__(self, embed_dim: int, grid: int, max_t: int) -> None:
        super().__init__()
        self.grid = grid
        self.max_t = max_t
        self.spatial = nn.Parameter(torch.zeros(1, grid * grid, embed_dim))  # 1 (gh gw) D
        self.temporal = nn.Parameter(torch.zeros(1, max_t, embed_dim))  # 1 t D
        nn.init.trunc_normal_(self.spatial, std=0.02)
        nn.init.trunc_normal_(self.temporal, std=0.02)

    def spatial_grid(self, h: int, w: int) -> torch.Tensor:
        """Spatial table for an ``h x w`` token grid, ``1 (h w) D``."""
        if h == self.grid and w == self.grid:
            return self.spatial
        d = self.spatial.shape[-1]
        table = self.spatial.reshape(1, self.grid, self.grid, d).permute(0, 3, 1, 2)  # 1 D gh gw
        table = F.interpolate(table, size=(h, w), mode="bicubic", align_corners=False)
        return table.permute(0, 2, 3, 1).reshape(1, h * w, d)

    def forward(self, t: int, h: int, w: int) -> torch.Tensor:
        """Positional embedding for a ``t h w`` token grid, ``1 (t h w) D`` (t order outermost)."""
        spatial = self.spatial_grid(h, w)  # 1 (h w) D
        temporal = self.temporal[:, :t]  # 1 t D
        d = spatial.shape[-1]
        pos = temporal.unsqueeze(2) + spatial.unsqueeze(1)  # 1 t (h w) D
        return pos.reshape(1, -1, d)

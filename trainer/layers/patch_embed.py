"""Tubelet patch embedding: a Conv3d turning ``B 3 T H W`` clips into a ``t h w`` grid of tokens."""

from __future__ import annotations

import torch
from torch import nn


class TubeletEmbed(nn.Module):
    """Non-overlapping ``tubelet x patch x patch`` cubes -> ``embed_dim`` tokens."""

    def __init__(self, embed_dim: int, patch: int = 16, tubelet: int = 2, in_chans: int = 3) -> None:
        super().__init__()
        self.patch = patch
        self.tubelet = tubelet
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=(tubelet, patch, patch), stride=(tubelet, patch, patch))

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``B 3 T H W`` -> grid ``B D t h w`` (t = T / tubelet, h = H / patch, w = W / patch)."""
        return self.proj(clip)

"""The M3Ret encoder: a ViT over ``B 3 T H W`` clips with tubelet patches and factorised positional embeddings.

One model takes 2D cases (T=2, one tubelet deep: 64 tokens at 128 px) and volumes/videos (T=16: 512 tokens).
``build_encoder(arch)`` returns a module whose ``forward(clip)`` is the L2-normalised CLS embedding, the vector the
engine indexes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.layers import Block, FactorisedPosEmbed, TubeletEmbed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchSpec:
    """Width, depth and heads of a named ViT size."""

    embed_dim: int
    depth: int
    num_heads: int


ARCHS: dict[str, ArchSpec] = {
    "vit_nano": ArchSpec(embed_dim=128, depth=6, num_heads=4),
    "vit_tiny": ArchSpec(embed_dim=192, depth=12, num_heads=3),
    "vit_small": ArchSpec(embed_dim=384, depth=12, num_heads=6),
    "vit_base": ArchSpec(embed_dim=768, depth=12, num_heads=12),
}


class VisionTransformer(nn.Module):
    """ViT encoder; ``forward`` returns the L2-normalised CLS embedding ``B D``."""

    def __init__(
        self,
        embed_dim: int,
        depth: int,
        num_heads: int,
        img_size: int = 128,
        patch: int = 16,
        tubelet: int = 2,
        max_frames: int = 16,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.patch = patch
        self.tubelet = tubelet
        self.patch_embed = TubeletEmbed(embed_dim, patch=patch, tubelet=tubelet)
        self.pos_embed = FactorisedPosEmbed(embed_dim, grid=img_size // patch, max_t=max_frames // tubelet)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        init_weights(self)
        nn.init.normal_(self.cls_token, std=0.02)

    def tokens(self, clip: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """Patch tokens with positions added, ``B N D`` (N = t h w), and the token grid ``(t, h, w)``."""
        if not torch.compiler.is_compiling() and not torch.jit.is_tracing():
            check_clip_shape(clip, self.tubelet, self.patch, self.pos_embed.max_t)
        grid = self.patch_embed(clip)  # B D t h w
        t, h, w = grid.shape[2], grid.shape[3], grid.shape[4]
        x = grid.flatten(2).transpose(1, 2)  # B (t h w) D
        return x + self.pos_embed(t, h, w), (t, h, w)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Prepend CLS, run the blocks, normalise: ``B N D`` -> ``B 1+N D``."""
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # B 1 D
        x = torch.cat([cls, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_features(self, clip: torch.Tensor) -> torch.Tensor:
        """All output tokens, ``B 1+N D`` (CLS first)."""
        x, _ = self.tokens(clip)
        return self.forward_tokens(x)

    def forward_cls(self, clip: torch.Tensor) -> torch.Tensor:
        """Un-normalised CLS feature ``B D`` (what projection heads see)."""
        return self.forward_features(clip)[:, 0]

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``B 3 T H W`` -> L2-normalised embedding ``B D``."""
        return F.normalize(self.forward_cls(clip), dim=-1)


def check_clip_shape(clip: torch.Tensor, tubelet: int, patch: int, max_t: int) -> None:
    """Raise ValueError with a one-line reason when a clip cannot be tokenised."""
    if clip.ndim != 5 or clip.shape[1] != 3:
        raise ValueError(f"expected a clip B 3 T H W, got shape {tuple(clip.shape)}")
    _, _, t, h, w = clip.shape
    if t % tubelet or h % patch or w % patch:
        raise ValueError(f"clip T H W {(t, h, w)} must be multiples of tubelet {tubelet} and patch {patch}")
    if t // tubelet > max_t:
        raise ValueError(f"clip has {t} frames; the model takes at most {max_t * tubelet}")


def init_weights(module: nn.Module) -> None:
    """MAE-style init: xavier-uniform linears (and the patch projection as a linear), unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv3d):
            nn.init.xavier_uniform_(m.weight.view(m.weight.shape[0], -1))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_encoder(arch: str = "vit_tiny", img_size: int = 128, max_frames: int = 16) -> VisionTransformer:
    """A randomly initialised encoder of a named size (``vit_nano``, ``vit_tiny``, ``vit_small``, ``vit_base``)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(ARCHS)}")
    spec = ARCHS[arch]
    return VisionTransformer(spec.embed_dim, spec.depth, spec.num_heads, img_size=img_size, max_frames=max_frames)

"""Masked autoencoding over tubelets (facebookresearch/mae ``models_mae.py`` style, video-MAE masking).

Small named steps: ``patchify`` -> ``random_masking`` -> ``forward_encoder`` -> ``forward_decoder`` ->
``forward_loss``. The encoder is shared (it is the model we ship); this module owns only the light decoder.
The mask ratio depends on the clip length: ~0.9 for T=16 (much redundancy along T), ~0.75 for T=2.
"""

from __future__ import annotations

import torch
from torch import nn

from trainer.layers import Block, FactorisedPosEmbed
from trainer.model import VisionTransformer, init_weights


class MAEDecoder(nn.Module):
    """Light transformer decoder predicting the pixels of masked tubelets."""

    def __init__(
        self,
        encoder: VisionTransformer,
        decoder_dim: int = 128,
        decoder_depth: int = 2,
        decoder_heads: int = 4,
        mask_ratio_2d: float = 0.75,
        mask_ratio_3d: float = 0.9,
        norm_pix_loss: bool = True,
    ) -> None:
        super().__init__()
        self.patch = encoder.patch
        self.tubelet = encoder.tubelet
        self.mask_ratio_2d = mask_ratio_2d
        self.mask_ratio_3d = mask_ratio_3d
        self.norm_pix_loss = norm_pix_loss
        pos = encoder.pos_embed
        self.decoder_embed = nn.Linear(encoder.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos = FactorisedPosEmbed(decoder_dim, grid=pos.grid, max_t=pos.max_t)
        self.decoder_blocks = nn.ModuleList([Block(decoder_dim, decoder_heads) for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_dim, self.tubelet * self.patch * self.patch * 3)
        init_weights(self)
        nn.init.normal_(self.mask_token, std=0.02)

    def patchify(self, clip: torch.Tensor) -> torch.Tensor:
        """``B 3 T H W`` -> ``B N P`` with N = t h w tubelets and P = tubelet * patch * patch * 3 values."""
        b, c, t, h, w = clip.shape
        u, p = self.tubelet, self.patch
        x = clip.reshape(b, c, t // u, u, h // p, p, w // p, p)  # B C t u h p w p
        x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # B t h w u p p C
        return x.reshape(b, (t // u) * (h // p) * (w // p), u * p * p * c)

    def mask_ratio_for(self, frames: int) -> float:
        """Mask ratio for a clip of ``frames`` frames (one tubelet deep = 2D)."""
        return self.mask_ratio_2d if frames <= self.tubelet else self.mask_ratio_3d

    @staticmethod
    def random_masking(x: torch.Tensor, mask_ratio: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep a random subset of tokens per sample (argsort of uniform noise).

        Returns the kept tokens ``B K D``, the binary mask ``B N`` (1 = removed) and ``ids_restore`` ``B N``.
        """
        b, n, d = x.shape
        keep = max(1, int(round(n * (1 - mask_ratio))))
        noise = torch.rand(b, n, device=x.device)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :keep]
        kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))  # B K D
        mask = torch.ones(b, n, device=x.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        return kept, mask, ids_restore

    def forward_encoder(
        self, encoder: VisionTransformer, clip: torch.Tensor, mask_ratio: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int, int]]:
        """Encode the visible tubelets: latent ``B 1+K D``, mask ``B N``, ids_restore ``B N``, grid."""
        x, grid = encoder.tokens(clip)  # B N D
        kept, mask, ids_restore = self.random_masking(x, mask_ratio)
        return encoder.forward_tokens(kept), mask, ids_restore, grid

    def forward_decoder(
        self, latent: torch.Tensor, ids_restore: torch.Tensor, grid: tuple[int, int, int]
    ) -> torch.Tensor:
        """Predict every tubelet's pixels from the visible latents: ``B N P``."""
        x = self.decoder_embed(latent)  # B 1+K Dd
        b, n = ids_restore.shape
        masks = self.mask_token.expand(b, n + 1 - x.shape[1], -1)
        tokens = torch.cat([x[:, 1:], masks], dim=1)  # B N Dd (shuffled order)
        tokens = torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))  # unshuffle
        tokens = tokens + self.decoder_pos(*grid)
        x = torch.cat([x[:, :1], tokens], dim=1)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]  # B N P

    def forward_loss(self, clip: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error on masked tubelets only, targets normalised per tubelet when ``norm_pix_loss``."""
        target = self.patchify(clip)  # B N P
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        loss = ((pred.float() - target) ** 2).mean(dim=-1)  # B N
        return (loss * mask).sum() / mask.sum().clamp(min=1)

    def forward(self, encoder: VisionTransformer, clip: torch.Tensor) -> torch.Tensor:
        """The MAE loss of one batch of equal-length clips ``B 3 T H W``."""
        latent, mask, ids_restore, grid = self.forward_encoder(encoder, clip, self.mask_ratio_for(clip.shape[2]))
        pred = self.forward_decoder(latent, ids_restore, grid)
        return self.forward_loss(clip, pred, mask)

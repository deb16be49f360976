"""ViT building blocks, one per file (dinov2 style)."""

from trainer.layers.attention import Attention
from trainer.layers.block import Block
from trainer.layers.mlp import Mlp
from trainer.layers.patch_embed import TubeletEmbed
from trainer.layers.pos_embed import FactorisedPosEmbed

__all__ = ["Attention", "Block", "Mlp", "TubeletEmbed", "FactorisedPosEmbed"]

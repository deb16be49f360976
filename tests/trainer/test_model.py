"""The encoder: token counts per clip length, positional embeddings, L2-normalised output, shape errors."""

from __future__ import annotations

import pytest
import torch

from trainer.model import ARCHS, build_encoder


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return build_encoder("vit_nano").eval()


@pytest.mark.parametrize(("frames", "tokens"), [(2, 64), (16, 512)])
def test_tokens_per_clip_length(encoder, frames, tokens):
    x, grid = encoder.tokens(torch.rand(2, 3, frames, 128, 128))
    assert x.shape == (2, tokens, encoder.embed_dim)
    assert grid == (frames // 2, 8, 8)


@pytest.mark.parametrize("frames", [2, 16])
def test_forward_is_l2_normalised(encoder, frames):
    with torch.no_grad():
        z = encoder(torch.rand(3, 3, frames, 128, 128))
    assert z.shape == (3, encoder.embed_dim)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))
    assert not torch.allclose(z[0], z[1])


def test_2d_clip_uses_only_first_temporal_position(encoder):
    clip = torch.rand(1, 3, 2, 128, 128)
    with torch.no_grad():
        before = encoder(clip)
        encoder.pos_embed.temporal[:, 1:] += 1.0
        after_2d = encoder(clip)
        changed_3d = encoder(clip.repeat(1, 1, 8, 1, 1))
        encoder.pos_embed.temporal[:, 1:] -= 1.0
        original_3d = encoder(clip.repeat(1, 1, 8, 1, 1))
    torch.testing.assert_close(before, after_2d)
    assert not torch.allclose(changed_3d, original_3d)


@pytest.mark.parametrize("size", [32, 64, 96])
def test_other_spatial_sizes_interpolate_positions(encoder, size):
    x, grid = encoder.tokens(torch.rand(1, 3, 4, size, size))
    assert grid == (2, size // 16, size // 16)
    assert x.shape[1] == 2 * (size // 16) ** 2


@pytest.mark.parametrize("shape", [(1, 3, 3, 128, 128), (1, 3, 2, 100, 128), (1, 1, 2, 128, 128), (1, 3, 18, 32, 32)])
def test_bad_clip_shapes_raise_one_line_errors(encoder, shape):
    with pytest.raises(ValueError, match="clip"):
        encoder(torch.rand(*shape))


def test_sizes_by_name_grow():
    counts = [sum(p.numel() for p in build_encoder(a).parameters()) for a in ("vit_nano", "vit_tiny", "vit_small")]
    assert counts == sorted(counts)
    assert build_encoder("vit_tiny").embed_dim == ARCHS["vit_tiny"].embed_dim == 192
    with pytest.raises(ValueError, match="unknown arch"):
        build_encoder("vit_huge")

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


def _perturbed_temporal_outputs(encoder, shift: torch.Tensor, clips: list[torch.Tensor]) -> list[torch.Tensor]:
    """The encoder's outputs for ``clips`` with ``shift`` added to temporal positions 1.. (restored afterwards)."""
    temporal = encoder.pos_embed.temporal  # 1 t D
    saved = temporal.detach().clone()
    with torch.no_grad():
        temporal[:, 1:] += shift
        try:
            return [encoder(c) for c in clips]
        finally:
            temporal.copy_(saved)


def test_2d_clip_uses_only_first_temporal_position(encoder):
    generator = torch.Generator().manual_seed(1)
    clip = torch.rand(1, 3, 2, 128, 128, generator=generator)
    clip_3d = clip.repeat(1, 1, 8, 1, 1)
    # a random direction per position: a constant added to every channel would be removed by the next LayerNorm
    shift = torch.randn(encoder.pos_embed.temporal[:, 1:].shape, generator=generator)  # 1 t-1 D
    with torch.no_grad():
        before_2d, before_3d = encoder(clip), encoder(clip_3d)
    after_2d, after_3d = _perturbed_temporal_outputs(encoder, shift, [clip, clip_3d])
    torch.testing.assert_close(after_2d, before_2d)
    cosine = float((after_3d * before_3d).sum())
    assert cosine < 0.99  # a real change of direction, far above float noise (~1e-7)


def test_constant_shift_of_temporal_positions_is_removed_by_layernorm(encoder):
    """Why the test above perturbs with a random vector: every LayerNorm subtracts the per-token mean."""
    clip_3d = torch.rand(1, 3, 16, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = encoder(clip_3d)
    (after,) = _perturbed_temporal_outputs(encoder, torch.tensor(1.0), [clip_3d])
    torch.testing.assert_close(after, before)


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

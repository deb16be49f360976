"""trainer.frame_encoder: frame selection, pooling over T, ImageNet weights, the folded projection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.frame_encoder import FrameClipEncoder


@pytest.fixture(scope="module")
def encoder() -> FrameClipEncoder:
    return FrameClipEncoder("efficientnet-lite0", pretrained=True, pooling="meanmax").eval()


def _clip(frames: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """A structured clip ``1 3 T S S`` whose frames all differ (smoothed noise)."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, frames, size // 8, size // 8)).astype(np.float32))
    return torch.nn.functional.interpolate(coarse, size=(frames, size, size), mode="trilinear")


def test_pooling_over_t_matches_a_hand_computation(encoder: FrameClipEncoder) -> None:
    clip = _clip(16)
    with torch.no_grad():
        per_frame = encoder.clip_frame_features(clip)  # 1 8 C: frames 0, 2, ..., 14
        by_hand = torch.stack([torch.nn.functional.normalize(encoder.frame_features(clip[:, :, t]), dim=-1)
                               for t in range(0, 16, 2)], dim=1)
        pooled = encoder.pooled(clip)
    assert per_frame.shape == (1, 8, encoder.feature_dim)
    torch.testing.assert_close(per_frame, by_hand, rtol=1e-4, atol=1e-4)
    mean = torch.nn.functional.normalize(by_hand.mean(dim=1), dim=-1)
    peak = torch.nn.functional.normalize(by_hand.amax(dim=1), dim=-1)
    torch.testing.assert_close(pooled, torch.cat([mean, peak], dim=1), rtol=1e-4, atol=1e-4)
    # max pooling keeps a frame that the mean dilutes: the two halves differ on a clip with varied frames
    assert float((pooled[0, : encoder.feature_dim] - pooled[0, encoder.feature_dim :]).abs().max()) > 1e-3


def test_a_2d_clip_costs_one_frame_and_equals_that_frame(encoder: FrameClipEncoder) -> None:
    image = _clip(1)
    clip = image.repeat(1, 1, 2, 1, 1)  # the engine's 2D clip: one image repeated to T = 2
    with torch.no_grad():
        assert encoder.clip_frame_features(clip).shape[1] == 1
        single = torch.nn.functional.normalize(encoder.frame_features(image[:, :, 0]), dim=-1)
        pooled = encoder.pooled(clip)
    torch.testing.assert_close(pooled, torch.cat([single, single], dim=1), rtol=1e-4, atol=1e-4)


def test_imagenet_weights_are_loaded_not_random() -> None:
    pretrained = FrameClipEncoder("efficientnet-lite0", pretrained=True)
    random = FrameClipEncoder("efficientnet-lite0", pretrained=False)
    a = pretrained.backbone._conv_stem.weight
    b = random.backbone._conv_stem.weight
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_output_is_unit_length_and_projection_changes_the_size(encoder: FrameClipEncoder) -> None:
    enc = FrameClipEncoder("efficientnet-lite0", pretrained=False, pooling="mean").eval()
    enc.set_projection(torch.randn(32, enc.pooled_dim), torch.zeros(32))
    with torch.no_grad():
        out = enc(_clip(16))
    assert out.shape == (1, 32) and enc.embed_dim == 32
    assert float(out.norm()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="projection takes 10 features"):
        enc.set_projection(torch.randn(4, 10), torch.zeros(4))


def test_freezing_keeps_only_the_last_blocks_trainable() -> None:
    enc = FrameClipEncoder("efficientnet-lite0", pretrained=False)
    enc.freeze_all_but_last(2)
    blocks = list(enc.backbone._blocks)
    assert all(not p.requires_grad for b in blocks[:-2] for p in b.parameters())
    assert all(p.requires_grad for b in blocks[-2:] for p in b.parameters())
    assert not enc.backbone._conv_stem.weight.requires_grad and enc.backbone._conv_head.weight.requires_grad


def test_multi_layer_descriptor_is_each_layer_pooled_and_normalised() -> None:
    enc = FrameClipEncoder("efficientnet-lite0", pretrained=True, pooling="mean",
                           layers=("stage6", "stage7", "head")).eval()
    assert enc.layer_dims == [192, 320, 1280] and enc.pooled_dim == 1792
    frames = _clip(1)[:, :, 0]  # 1 3 S S
    with torch.no_grad():
        descriptor = enc.frame_descriptors(frames)
        head = torch.nn.functional.normalize(enc.frame_features(frames), dim=-1)
    parts = descriptor.split(enc.layer_dims, dim=1)
    torch.testing.assert_close(parts[2], head, rtol=1e-4, atol=1e-4)  # the head part is the plain head feature
    for part in parts:
        assert float(part.norm()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="unknown layer 'stage9'"):
        FrameClipEncoder("efficientnet-lite0", pretrained=False, layers=("stage9",))

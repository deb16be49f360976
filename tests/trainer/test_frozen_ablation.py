"""trainer.frozen_ablation: which frames each view takes, the descriptor keys, and the variants' features."""

from __future__ import annotations

import numpy as np
import torch

from trainer.frame_encoder import FrameClipEncoder
from trainer.frozen_ablation import (
    LAYERS,
    Variant,
    bootstrap_fits,
    clip_descriptors,
    first_view,
    fit_projection,
    second_view,
    variant_features,
)


def _striped_volume() -> torch.Tensor:
    """``3 8 32 32``: even frames black, odd frames white."""
    clip = torch.zeros(3, 8, 32, 32)
    clip[:, 1::2] = 1.0
    return clip


def test_the_second_view_of_a_volume_is_its_other_slices_and_of_an_image_the_same_image() -> None:
    volume = _striped_volume()
    assert first_view(volume).shape == (3, 4, 32, 32) and float(first_view(volume).max()) == 0.0
    second = second_view(volume, seed=0)
    assert second.shape == (3, 4, 32, 32) and float(second.mean()) > 0.8  # the white (odd) slices
    image = torch.rand(3, 2, 32, 32)
    assert first_view(image).shape == (3, 1, 32, 32) and second_view(image, seed=1).shape == (3, 1, 32, 32)


def test_every_layer_and_pooling_has_a_descriptor_and_variants_concatenate_unit_parts() -> None:
    torch.manual_seed(0)
    encoder = FrameClipEncoder("efficientnet-lite0", pretrained=False, layers=("head",)).eval()
    store_rows = [clip_descriptors(encoder, first_view(torch.rand(3, 4, 64, 64))) for _ in range(3)]
    keys = set(store_rows[0])
    assert {f"{layer}/{s}/mean" for layer in LAYERS for s in ("avg", "gem", "max")} <= keys
    assert {f"{layer}/avg/max" for layer in LAYERS} <= keys
    store = {k: np.stack([r[k] for r in store_rows]).astype(np.float64) for k in keys}
    variant = Variant("two layers, mean+max", ("stage7", "head"), temporal="meanmax")
    x = variant_features(store, variant)
    assert x.shape == (3, 2 * (320 + 1280))
    parts = np.split(x, np.cumsum([320, 1280, 320])[:3], axis=1)
    np.testing.assert_allclose([np.linalg.norm(p, axis=1) for p in parts], 1.0, rtol=1e-6)
    assert fit_projection(Variant("raw", ("head",)), store, store, ["a"] * 3)(x) is x


def test_each_seed_fits_its_projection_on_a_different_resample() -> None:
    rng = np.random.default_rng(0)
    store = {"head/avg/mean": rng.normal(size=(40, 6))}
    variant = Variant("pca", ("head",), projection="pca", dim=2)
    groups = ["a"] * 30 + ["b"] * 10
    fits = bootstrap_fits(variant, store, store, groups, seeds=(0, 1, 0))
    x = variant_features(store, variant)
    first, second, again = (f(x) for f in fits)
    np.testing.assert_allclose(first, again)  # a seed is reproducible
    assert not np.allclose(np.abs(first), np.abs(second), atol=1e-3)  # and another seed is another fit

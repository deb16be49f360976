"""trainer.whitening: equal weight per group, decorrelated output, and the fold into the encoder graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.frame_encoder import FrameClipEncoder
from trainer.whitening import fit_whitening


def test_whitened_training_features_are_decorrelated_with_unit_variance() -> None:
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(6, 6))
    x = rng.normal(size=(4000, 6)) @ mixing + 3.0  # correlated, off-centre
    w = fit_whitening(x, ["a"] * len(x), dim=6, shrinkage=0.0)
    y = x @ w.weight.T + w.bias
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.cov(y.T, bias=True), np.eye(6), atol=1e-6)


def test_every_group_weighs_the_same_whatever_its_size() -> None:
    rng = np.random.default_rng(1)
    big = rng.normal(size=(1000, 3)) + np.array([10.0, 0.0, 0.0])
    small = rng.normal(size=(10, 3)) - np.array([10.0, 0.0, 0.0])
    x = np.concatenate([big, small])
    w = fit_whitening(x, ["big"] * 1000 + ["small"] * 10, dim=3, shrinkage=0.0)
    centre = -np.linalg.solve(w.weight, w.bias)  # the fitted mean: W (x - mean) = W x + b
    assert abs(centre[0]) < 0.5  # halfway between the two group means, not pulled to the big group's +10


def test_whitening_folded_into_the_encoder_equals_whitening_applied_outside() -> None:
    torch.manual_seed(0)
    encoder = FrameClipEncoder("efficientnet-lite0", pretrained=False, pooling="meanmax").eval()
    clips = torch.rand(6, 3, 4, 48, 48)
    with torch.no_grad():
        pooled = encoder.pooled(clips).numpy()
    rng = np.random.default_rng(2)
    w = fit_whitening(pooled + rng.normal(scale=0.01, size=pooled.shape), ["x", "x", "x", "y", "y", "y"], dim=4)
    outside = w.apply(pooled)
    encoder.set_projection(torch.from_numpy(w.weight), torch.from_numpy(w.bias))
    with torch.no_grad():
        inside = encoder(clips).numpy()
    np.testing.assert_allclose(inside, outside, atol=1e-4)


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="do not match"):
        fit_whitening(np.zeros((5, 3)), ["a"] * 4)

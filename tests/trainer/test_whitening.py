"""trainer.whitening: equal weight per group, decorrelated output, and the fold into the encoder graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.frame_encoder import FrameClipEncoder
from trainer.whitening import fit_learned_whitening, fit_whitening


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


def test_learned_whitening_keeps_what_survives_a_second_view_and_drops_what_does_not() -> None:
    """A direction with large variance that changes between two views of one case (a nuisance, e.g. contrast) wins
    plain PCA's first component; learned whitening's first component is the stable one that separates cases."""
    rng = np.random.default_rng(3)
    n = 600
    case = rng.choice([-1.0, 1.0], size=n)  # two kinds of case: the signal on axis 1
    stable = np.stack([np.zeros(n), case, np.zeros(n)], axis=1) + rng.normal(scale=0.1, size=(n, 3))
    def view() -> np.ndarray:  # nuisance on axis 0, drawn anew for each view; a little noise everywhere
        return stable + np.outer(rng.normal(scale=5.0, size=n), [1.0, 0.0, 0.0]) + rng.normal(scale=0.05, size=(n, 3))

    view_a, view_b = view(), view()
    plain = fit_whitening(view_a, ["g"] * n, dim=1, power=0.0)
    learned = fit_learned_whitening(view_a, view_b, ["g"] * n, dim=1, power=0.5, shrinkage=0.0)
    assert abs(plain.weight[0, 0]) > 0.9 * np.linalg.norm(plain.weight[0])  # PCA keeps the nuisance
    assert abs(learned.weight[0, 1]) > 0.9 * np.linalg.norm(learned.weight[0])  # learned whitening keeps the signal
    projected = view_b @ learned.weight.T + learned.bias  # N 1, on views it was not fitted to
    assert np.mean(np.sign(projected[:, 0]) == np.sign(projected[:, 0] @ case) * case) > 0.95


def test_learned_whitening_rejects_views_that_do_not_pair_up() -> None:
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="paired views"):
        fit_learned_whitening(x, np.zeros((4, 3)), ["g"] * 5)


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

"""PCA whitening fitted on unlabelled features, with every modality weighted equally, folded into the encoder.

Retrieval with off-the-shelf CNN features improves when the features are centred and whitened (Jégou and Chum
2012; Radenović et al. 2018): directions that every image shares stop dominating the cosine. The fit here:

- ``mean`` = mean of the per-group means (a group = a modality), so a modality with 1,000 training clips and one
  with 70 pull the centre equally;
- ``covariance`` = mean of the per-group covariances around that centre;
- eigen-decomposition; keep the top ``dim`` directions; scale each by ``(eigenvalue + shrinkage)^-power``
  (``power`` 0.5 = full whitening; ``shrinkage`` = a fraction of the mean kept eigenvalue, so near-empty
  directions are not blown up into noise).

``fit_learned_whitening`` is the learned variant (Radenović et al. 2018, "learned whitening"): it first whitens by
the covariance of the differences between two views of the same clip (a neighbouring slice or frame, another crop
and contrast), so directions that change when the case does not are damped, then rotates by PCA of the result.
The pairs come from the unlabelled train clips; no label is used.

The result is one linear map ``x -> W (x - mean)``: ``Whitening.weight`` ``D P`` and ``bias`` ``D``, which
``FrameClipEncoder.set_projection`` folds into the exported graph (no second step at inference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Whitening:
    """A fitted whitening: ``x -> weight @ x + bias``."""

    weight: np.ndarray  # D P, float32
    bias: np.ndarray  # D, float32

    def apply(self, features: np.ndarray) -> np.ndarray:
        """``N P`` -> whitened, L2-normalised ``N D``."""
        out = features @ self.weight.T + self.bias
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def fit_whitening(
    features: np.ndarray,
    groups: Sequence[str],
    dim: int = 256,
    power: float = 0.5,
    shrinkage: float = 0.1,
) -> Whitening:
    """Fit on ``features`` ``N P`` (float) with a group name per row (e.g. modality); see the module docstring."""
    x = np.asarray(features, dtype=np.float64)
    names = np.asarray(groups, dtype=object).astype(str)
    if x.ndim != 2 or len(names) != x.shape[0]:
        raise ValueError(f"features {x.shape} and {len(names)} group names do not match")
    mean, cov = _balanced_moments(x, names)
    values, vectors = _top_directions(cov, dim)  # D, P D
    scale = (values + shrinkage * values.mean()) ** -power  # D
    weight = (vectors * scale).T  # D P
    return Whitening(weight=weight.astype(np.float32), bias=(-weight @ mean).astype(np.float32))


def fit_learned_whitening(
    features: np.ndarray,
    paired: np.ndarray,
    groups: Sequence[str],
    dim: int = 256,
    power: float = 0.25,
    shrinkage: float = 0.1,
) -> Whitening:
    """Learned whitening from ``features`` ``N P`` and ``paired`` ``N P`` (a second view of each row's clip).

    ``x -> U^T C_s^-power (x - mean)``: ``C_s`` = group-balanced covariance of the view differences (eigenvalues
    shrunk by ``shrinkage`` of their mean), ``U`` = its top ``dim`` principal directions of the damped training data.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(paired, dtype=np.float64)
    names = np.asarray(groups, dtype=object).astype(str)
    if x.shape != y.shape or x.ndim != 2 or len(names) != x.shape[0]:
        raise ValueError(f"features {x.shape}, paired views {y.shape} and {len(names)} group names do not match")
    _, pair_cov = _balanced_moments(x - y, names, centre=False)
    values, vectors = np.linalg.eigh(pair_cov)
    values = np.clip(values, 0.0, None)
    floor = max(shrinkage * values.mean(), 1e-9 * values.max(), 1e-30)  # a view-invariant direction stays finite
    damp = (vectors * (values + floor) ** -power) @ vectors.T  # P P, C_s^-power
    mean, cov = _balanced_moments(x, names)
    _, rotation = _top_directions(damp @ cov @ damp.T, dim)  # P D
    weight = rotation.T @ damp  # D P
    return Whitening(weight=weight.astype(np.float32), bias=(-weight @ mean).astype(np.float32))


def _top_directions(cov: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``dim`` largest eigenvalues of ``cov`` (clipped at 0), descending, and their eigenvectors ``P D``."""
    eigenvalues, eigenvectors = np.linalg.eigh(cov)  # ascending
    order = np.argsort(eigenvalues)[::-1][: min(dim, cov.shape[0])]
    return np.clip(eigenvalues[order], 0.0, None), eigenvectors[:, order]


def _balanced_moments(x: np.ndarray, names: np.ndarray, centre: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the per-group means and mean of the per-group covariances around it (around 0 if not ``centre``)."""
    unique = sorted(set(names))
    mean = np.mean([x[names == g].mean(axis=0) for g in unique], axis=0) if centre else np.zeros(x.shape[1])  # P
    cov = np.zeros((x.shape[1], x.shape[1]))
    for g in unique:
        centred = x[names == g] - mean
        cov += centred.T @ centred / max(1, len(centred))
    return mean, cov / len(unique)

"""Synthetic clips for tests and smoke runs (no data needed): smooth random blobs, 2D and 3D, two 'modalities'."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class SyntheticClips:
    """``n`` deterministic clips: even indices 2D (``xray``, T=2), odd indices 3D (``ct``, T=16)."""

    def __init__(self, n: int = 32, size: int = 32, seed: int = 0) -> None:
        self.size = size
        self.seed = seed
        self.lengths = [2 if i % 2 == 0 else 16 for i in range(n)]
        self.modalities = ["xray" if i % 2 == 0 else "ct" for i in range(n)]

    def __len__(self) -> int:
        return len(self.lengths)

    def length(self, i: int) -> int:
        """Clip length T of clip ``i``."""
        return self.lengths[i]

    def clips(self, i: int) -> np.ndarray:
        """Clip ``i`` as float32 ``3 T H W`` in [0, 1]: a few Gaussian blobs that drift along T."""
        rng = np.random.default_rng([self.seed, i])
        t, s = self.lengths[i], self.size
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
        frames = np.zeros((t, s, s), dtype=np.float32)
        for _ in range(3):
            cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.25)
            dy, dx = rng.uniform(-0.2, 0.2, size=2) / max(t, 1)
            for k in range(t):
                frames[k] += np.exp(-((yy - cy - k * dy) ** 2 + (xx - cx - k * dx) ** 2) / (2 * r * r))
        frames /= frames.max()
        return np.repeat(frames[None], 3, axis=0)

    def batch(self, indices: Sequence[int]) -> np.ndarray:
        """Clips of the same length as float32 ``B 3 T H W``."""
        return np.stack([self.clips(i) for i in indices])

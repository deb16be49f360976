"""Batches of equal-length clips with modality-balanced sampling.

Clips of different lengths T cannot share a batch, so each step first draws a clip length, then a batch of clips
of that length. Every clip gets the weight ``modality_weight / clips_of_that_modality``, so each modality is
drawn equally often by default whatever its size (1188 CT volumes do not drown 76 ultrasound cases); a length is
drawn with the total weight of its clips. The length draw uses an RNG shared by all ranks (every rank runs the
same kind of batch at a step, so step times match); the clip draw uses a per-rank RNG. Both states are saved in
checkpoints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np


class BalancedBatchSampler:
    """``next_batch() -> (T, indices)``; infinite, with replacement across batches."""

    def __init__(
        self,
        lengths: Sequence[int],
        modalities: Sequence[str],
        batch_sizes: Mapping[int, int],
        modality_weights: Mapping[str, float] | None = None,
        seed: int = 0,
        rank: int = 0,
    ) -> None:
        if len(lengths) != len(modalities) or not lengths:
            raise ValueError("need one length and one modality per clip, and at least one clip")
        weights_by_modality = dict(modality_weights or {})
        counts = Counter(modalities)
        weights = np.array([weights_by_modality.get(m, 1.0) / counts[m] for m in modalities], dtype=np.float64)
        lengths_arr = np.asarray(lengths)
        self.lengths = sorted({int(t) for t in lengths_arr if weights[lengths_arr == t].sum() > 0})
        if not self.lengths:
            raise ValueError("every modality has weight 0")
        self.members = {t: np.flatnonzero(lengths_arr == t) for t in self.lengths}
        self.member_p = {t: weights[m] / weights[m].sum() for t, m in self.members.items()}
        length_w = np.array([weights[self.members[t]].sum() for t in self.lengths])
        self.length_p = length_w / length_w.sum()
        self.batch_sizes = {t: int(batch_sizes[t]) for t in self.lengths}
        self.shared_rng = np.random.default_rng(seed)
        self.rank_rng = np.random.default_rng([seed, rank, 1])

    def next_batch(self) -> tuple[int, list[int]]:
        """Clip length and the indices of one batch (without replacement inside the batch where possible)."""
        t = self.lengths[int(self.shared_rng.choice(len(self.lengths), p=self.length_p))]
        members, p = self.members[t], self.member_p[t]
        size = self.batch_sizes[t]
        replace = size > int((p > 0).sum())
        picked = self.rank_rng.choice(members, size=size, replace=replace, p=p)
        return t, [int(i) for i in picked]

    def state_dict(self) -> dict:
        return {"shared": self.shared_rng.bit_generator.state, "rank": self.rank_rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.shared_rng.bit_generator.state = state["shared"]
        self.rank_rng.bit_generator.state = state["rank"]

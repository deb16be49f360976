"""A readable match score: a raw cosine placed in the library's own distribution of nearest-neighbour similarities.

Raw cosines of one encoder crowd together (unrelated cases at 0.93-0.99, CT masks at 0.998), so a raw score does
not say whether a match is good. The *match* score (0-100) answers "how close is this, compared with how close
the cases of this library are to their own closest neighbour?": a sample of up to ``SAMPLE_SIZE`` library cases
is searched against the library (itself left out); the percentiles of those nearest-neighbour cosines are the
calibration, and a result's match score is the percentile its cosine falls at (linear between percentiles):

- 50: as close as a typical library case is to its nearest neighbour; 90: closer than 90 % of those pairs;
- 100: at least as close as the closest pair found (a near-duplicate); 0: less close than any of them.

The calibration is cached in the library folder (``score_calibration.json``) for the library's model and
recomputed when the number of indexed cases has changed by more than ``STALE_FRACTION``. Libraries with fewer
than ``MIN_CASES`` cases have none (scores are then shown as raw cosines).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from engine.library import Library

log = logging.getLogger(__name__)

CALIBRATION_FILE = "score_calibration.json"
SAMPLE_SIZE = 1000  # library cases whose nearest neighbour is measured
MIN_CASES = 10  # fewer indexed cases: no calibration
STALE_FRACTION = 0.1  # recompute when the case count changed by more than this share
PERCENTILES = np.arange(101, dtype=np.float64)  # 0, 1, ..., 100
_lock = threading.Lock()


@dataclass(frozen=True, eq=False)
class ScoreCalibration:
    """Cosine at each percentile 0..100 of the library's nearest-neighbour similarities."""

    model_id: str
    n_cases: int  # indexed cases when it was computed
    quantiles: np.ndarray  # float64 101, non-decreasing

    def match(self, cosine: float) -> float:
        """The match score 0-100 of a raw cosine (see the module docstring)."""
        xs, ys = _strictly_increasing(self.quantiles)
        if len(xs) == 1:
            return 100.0 if cosine >= xs[0] else 0.0
        return float(np.interp(cosine, xs, ys))

    def is_current(self, model_id: str | None, n_cases: int) -> bool:
        return model_id == self.model_id and abs(n_cases - self.n_cases) <= STALE_FRACTION * max(self.n_cases, 1)

    def to_json(self) -> str:
        return json.dumps({"model_id": self.model_id, "n_cases": self.n_cases,
                           "quantiles": [round(float(q), 7) for q in self.quantiles]})

    @classmethod
    def from_json(cls, text: str) -> "ScoreCalibration":
        doc = json.loads(text)
        quantiles = np.asarray(doc["quantiles"], dtype=np.float64)
        if quantiles.shape != PERCENTILES.shape or np.any(np.diff(quantiles) < 0):
            raise ValueError("quantiles must be 101 non-decreasing values")
        return cls(str(doc["model_id"]), int(doc["n_cases"]), quantiles)


def _strictly_increasing(quantiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct cosines and the mean percentile of each (ties share one percentile, so ``np.interp`` is exact)."""
    xs, inverse = np.unique(quantiles, return_inverse=True)
    ys = np.bincount(inverse, weights=PERCENTILES) / np.bincount(inverse)
    return xs, ys


def nearest_neighbour_cosines(library: "Library", sample_size: int = SAMPLE_SIZE, seed: int = 0) -> np.ndarray:
    """Cosine of up to ``sample_size`` library cases to their nearest other case -> float64 ``S``."""
    index = library.index
    keys = index.keys()
    if len(keys) < 2:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(keys, size=min(sample_size, len(keys)), replace=False))
    vectors = index.get(sample)  # S D
    out = np.empty(len(sample))
    for i, (key, vector) in enumerate(zip(sample.tolist(), vectors)):
        _, sims = index.search(vector, 1, accept=lambda found, key=key: found != key)
        out[i] = float(sims[0]) if len(sims) else np.nan
    return out[np.isfinite(out)]


def compute_calibration(library: "Library", sample_size: int = SAMPLE_SIZE) -> ScoreCalibration | None:
    """A fresh calibration of ``library`` (None when it holds fewer than ``MIN_CASES`` indexed cases)."""
    n_cases = len(library.index)
    if library.model_id is None or n_cases < MIN_CASES:
        return None
    cosines = nearest_neighbour_cosines(library, sample_size)
    if len(cosines) < MIN_CASES:
        return None
    return ScoreCalibration(library.model_id, n_cases, np.percentile(cosines, PERCENTILES))


def calibration_for(library: "Library") -> ScoreCalibration | None:
    """The library's calibration: cached on disk while current, else computed and saved."""
    n_cases = len(library.index)
    path = Path(library.path) / CALIBRATION_FILE
    with _lock:
        cached = _load(path)
        if cached is not None and cached.is_current(library.model_id, n_cases):
            return cached
        calibration = compute_calibration(library)
        if calibration is not None:
            _save(path, calibration)
            log.info("%s: score calibration from %d cases (median nearest-neighbour cosine %.4f)", library.path,
                     n_cases, calibration.quantiles[50])
        return calibration


def _load(path: Path) -> ScoreCalibration | None:
    try:
        return ScoreCalibration.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable score calibration, recomputing (%s)", path, exc)
        return None


def _save(path: Path, calibration: ScoreCalibration) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(calibration.to_json())
        os.replace(tmp, path)
    except OSError as exc:  # a read-only library still searches; it just recomputes next time
        log.warning("%s: cannot save the score calibration (%s)", path, exc)

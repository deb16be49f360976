"""Why this match: the matched slice / frame of a volume or video pair, and an occlusion heatmap over both images.

Everything goes through the encoder's public ONNX contract (clip ``B 3 T H W`` in, unit vector out), so it works
for any model the library uses, whatever its architecture (a ViT exposes patch tokens, a per-frame CNN does not).

**Matched position.** Each position (slice of a volume, frame of a video) gets its own embedding from a sub-clip
made exactly like a 2D image's clip: the slice repeated ``frames_2d`` times (the model's 2D path, one tubelet
deep, the cheapest input it takes; a window of neighbouring slices would blur which slice matched), after
intensity scaling over the *whole* case (so a slice is scaled as it is inside the full clip). Long cases are sampled at ``EXPLAIN_MAX_POSITIONS`` positions. The
cosine matrix query positions x result positions gives the best result position for any query position and the
overall best pair; a row of it is the similarity-along-the-axis profile.

**Heatmap: occlusion, not patch tokens.** Each cell of a coarse ``grid x grid`` grid over the model's input
square is hidden in turn (filled with that clip's mean), all cells of one image in one batch of clips, and the
pair's cosine is recomputed. The heatmap value of a cell is ``sim(pair) - sim(pair with the cell hidden in this
image)``: positive where the region supports the match (hiding it lowers the score), negative where it works
against it (hiding it raises the score: the images differ there). Occlusion needs nothing but the model's input
and output (patch-token similarity would need tokens the ONNX contract does not expose and a per-frame CNN does
not have), and it measures what the score actually depends on. Cost: ``grid**2 + 1`` clips per image of the
2D kind (T = ``frames_2d``); for volumes and videos it is computed on the sub-clips at the shown positions, the
slices the viewer displays.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from engine.config import EXPLAIN_GRID, EXPLAIN_MAX_POSITIONS
from engine.encoder import Encoder
from engine.io.case import Case
from engine.preprocess import (
    PreprocessParams,
    case_to_clip,
    fit_size,
    pixel_aspect,
    resize_and_pad,
    sample_indices,
    scale_intensity,
)

log = logging.getLogger(__name__)


# ---- matched slice / frame ---------------------------------------------------------------------------------------


def n_positions(case: Case) -> int:
    """Slices (volume) or frames held (video); 1 for a 2D image."""
    return 1 if case.kind == "image2d" else int(case.pixels.shape[0])


def explained_positions(case: Case, max_positions: int = EXPLAIN_MAX_POSITIONS) -> np.ndarray:
    """Positions given their own embedding: every one, or ``max_positions`` spread uniformly (int64, sorted)."""
    n = n_positions(case)
    if n <= max_positions:
        return np.arange(n, dtype=np.int64)
    return np.unique(sample_indices(n, max_positions))


def prepared_frames(case: Case, params: PreprocessParams) -> np.ndarray:
    """All of the case's frames as the model sees them: float32 ``N S S 3`` in [0, 1], scaled over the whole case."""
    pixels = case.pixels[None] if case.kind == "image2d" else case.pixels
    frames = np.asarray(pixels, dtype=np.float32)
    if frames.ndim == 3:
        frames = frames[..., None]  # N H W 1
    frames = scale_intensity(frames, case, params)
    frames = resize_and_pad(frames, params.size, pixel_aspect(case))  # N S S C
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    return frames


def sub_clip(frames: np.ndarray, position: int, depth: int) -> np.ndarray:
    """The prepared frame at ``position`` repeated ``depth`` times, as ``3 T S S`` (a 2D image's clip)."""
    idx = np.full(depth, int(position))
    return np.ascontiguousarray(frames[idx].transpose(3, 0, 1, 2))  # C T S S


def position_clips(case: Case, params: PreprocessParams, positions: np.ndarray) -> list[np.ndarray]:
    """The sub-clip of each position (module docstring); a 2D case gives its own clip."""
    if case.kind == "image2d":
        return [case_to_clip(case, params)]
    frames = prepared_frames(case, params)  # N S S 3
    return [sub_clip(frames, int(p), params.frames_2d) for p in positions]


def position_embeddings(encoder: Encoder, case: Case, positions: np.ndarray | None = None) -> np.ndarray:
    """One embedding per position, ``float32 P D`` (L2-normalised)."""
    positions = explained_positions(case) if positions is None else positions
    return encoder.embed_clips(position_clips(case, encoder.params, positions))


@dataclass
class PositionMatch:
    """Cosine similarity between every explained query position and every explained result position."""

    query_positions: np.ndarray  # Pq int64, indices along the query's first axis
    result_positions: np.ndarray  # Pr int64
    similarity: np.ndarray  # Pq Pr float32

    def _row(self, query_position: int) -> int:
        return int(np.argmin(np.abs(self.query_positions - query_position)))

    def best_for(self, query_position: int) -> tuple[int, float]:
        """The result position most similar to the query position nearest ``query_position``, and its score."""
        row = self.similarity[self._row(query_position)]
        best = int(np.argmax(row))
        return int(self.result_positions[best]), float(row[best])

    def best_pair(self) -> tuple[int, int, float]:
        """(query position, result position, score) of the most similar pair overall."""
        flat = int(np.argmax(self.similarity))
        i, j = np.unravel_index(flat, self.similarity.shape)
        return int(self.query_positions[i]), int(self.result_positions[j]), float(self.similarity[i, j])

    def profile(self, query_position: int) -> tuple[np.ndarray, np.ndarray]:
        """(result positions, their similarity to the query position): the along-the-axis plot."""
        return self.result_positions, self.similarity[self._row(query_position)]

    def to_json(self) -> dict[str, object]:
        q, r, s = self.best_pair()
        return {"query_positions": self.query_positions.tolist(), "result_positions": self.result_positions.tolist(),
                "best_pair": {"query": q, "result": r, "score": s}}


def match_positions(encoder: Encoder, query: Case, result: Case,
                    max_positions: int = EXPLAIN_MAX_POSITIONS,
                    query_embeddings: np.ndarray | None = None) -> PositionMatch:
    """Per-position embeddings of both cases and their cosine matrix (``query_embeddings``: reuse a cached set
    computed with ``explained_positions(query, max_positions)``)."""
    q_pos = explained_positions(query, max_positions)
    r_pos = explained_positions(result, max_positions)
    q_emb = query_embeddings if query_embeddings is not None else position_embeddings(encoder, query, q_pos)
    r_emb = position_embeddings(encoder, result, r_pos)
    return PositionMatch(q_pos, r_pos, (q_emb @ r_emb.T).astype(np.float32))  # Pq Pr


# ---- occlusion heatmap -------------------------------------------------------------------------------------------


@dataclass
class PairHeatmap:
    """Occlusion heatmaps of one pair at the shown positions (module docstring for the sign)."""

    query_grid: np.ndarray  # G G float32, in the model's input square
    result_grid: np.ndarray  # G G
    query: np.ndarray  # H W float32, on the query's shown frame
    result: np.ndarray  # H W, on the result's shown frame
    score: float  # cosine of the two clips the heatmaps explain
    query_position: int
    result_position: int


def occluded_clips(clip: np.ndarray, grid: int) -> list[np.ndarray]:
    """``grid**2`` copies of ``clip`` (``3 T S S``), each with one cell filled with the clip's mean."""
    size = clip.shape[-1]
    edges = np.linspace(0, size, grid + 1).round().astype(int)
    fill = clip.mean(axis=(1, 2, 3), keepdims=True)  # 3 1 1 1
    out = []
    for i in range(grid):
        for j in range(grid):
            hidden = clip.copy()
            y0, y1, x0, x1 = edges[i], edges[i + 1], edges[j], edges[j + 1]
            hidden[:, :, y0:y1, x0:x1] = fill[:, :, 0:1, 0:1]
            out.append(hidden)
    return out


def occlusion_grid(encoder: Encoder, clip: np.ndarray, other: np.ndarray, grid: int = EXPLAIN_GRID) -> np.ndarray:
    """``G G`` map: cosine to ``other`` (a unit vector) of ``clip`` minus that with each cell hidden."""
    vectors = encoder.embed_clips([clip, *occluded_clips(clip, grid)])  # 1+G*G D
    sims = vectors @ other  # 1+G*G
    return (sims[0] - sims[1:]).reshape(grid, grid).astype(np.float32)


def grid_to_frame(grid_map: np.ndarray, frame_shape: tuple[int, int], size: int, aspect: float) -> np.ndarray:
    """Bring a ``G G`` map over the model's input square back onto the frame it came from (``H W``)."""
    square = cv2.resize(grid_map, (size, size), interpolation=cv2.INTER_LINEAR)  # S S
    h, w = fit_size(frame_shape[0], frame_shape[1], size, aspect)
    top, left = (size - h) // 2, (size - w) // 2
    content = square[top : top + h, left : left + w]
    return cv2.resize(content, (frame_shape[1], frame_shape[0]), interpolation=cv2.INTER_LINEAR)


def shown_frame(case: Case, position: int) -> np.ndarray:
    """The frame a viewer shows at ``position`` (``H W`` or ``H W 3``)."""
    return case.pixels if case.kind == "image2d" else case.pixels[int(position)]


def occlusion_heatmaps(encoder: Encoder, query: Case, result: Case, query_position: int = 0,
                       result_position: int = 0, grid: int = EXPLAIN_GRID) -> PairHeatmap:
    """Occlusion heatmaps of both images of a pair at the given positions (ignored for 2D cases)."""
    params = encoder.params
    q_pos = np.asarray([query_position], dtype=np.int64)
    r_pos = np.asarray([result_position], dtype=np.int64)
    (q_clip,) = position_clips(query, params, q_pos)
    (r_clip,) = position_clips(result, params, r_pos)
    q_vec, r_vec = encoder.embed_clips([q_clip, r_clip])
    q_grid = occlusion_grid(encoder, q_clip, r_vec, grid)
    r_grid = occlusion_grid(encoder, r_clip, q_vec, grid)
    q_frame, r_frame = shown_frame(query, query_position), shown_frame(result, result_position)
    return PairHeatmap(
        query_grid=q_grid, result_grid=r_grid,
        query=grid_to_frame(q_grid, q_frame.shape[:2], params.size, pixel_aspect(query)),
        result=grid_to_frame(r_grid, r_frame.shape[:2], params.size, pixel_aspect(result)),
        score=float(q_vec @ r_vec), query_position=int(query_position), result_position=int(result_position),
    )


def heatmap_colours(heat: np.ndarray, scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Diverging colours for a signed map: (``H W 3`` RGB uint8, ``H W`` opacity in [0, 1]).

    Warm (red-yellow) where the region supports the match, cool (blue-cyan) where it works against it; the
    opacity grows with the magnitude, relative to ``scale`` (default: the map's largest magnitude)."""
    scale = float(np.abs(heat).max()) if scale is None else float(scale)
    norm = np.clip(heat / scale, -1.0, 1.0) if scale > 0 else np.zeros_like(heat)  # H W in [-1, 1]
    magnitude = np.abs(norm)
    rgb = np.zeros(heat.shape + (3,), np.float32)
    positive = norm > 0
    rgb[positive] = np.stack([np.ones_like(magnitude), magnitude * 0.9, np.zeros_like(magnitude)], -1)[positive]
    rgb[~positive] = np.stack([np.zeros_like(magnitude), magnitude * 0.8, np.ones_like(magnitude)], -1)[~positive]
    return (rgb * 255 + 0.5).astype(np.uint8), magnitude.astype(np.float32)


def overlay(frame_rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """``frame_rgb`` (``H W 3`` uint8) with the heatmap blended in (``alpha`` = opacity at full magnitude)."""
    colours, weight = heatmap_colours(heat)
    weight = (weight * alpha)[..., None]  # H W 1
    return (frame_rgb.astype(np.float32) * (1 - weight) + colours.astype(np.float32) * weight + 0.5).astype(np.uint8)


__all__ = [
    "PairHeatmap", "PositionMatch", "explained_positions", "grid_to_frame", "heatmap_colours", "match_positions",
    "n_positions", "occluded_clips", "occlusion_grid", "occlusion_heatmaps", "overlay", "position_embeddings",
    "prepared_frames", "shown_frame",
]

"""engine.explain: a planted slice is found at its index, an occlusion heatmap peaks where a pair differs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.encoder import Encoder
from engine.explain import (
    explained_positions,
    grid_to_frame,
    heatmap_colours,
    match_positions,
    occluded_clips,
    occlusion_heatmaps,
    overlay,
)
from engine.io.case import Case


def smooth_random_image(rng: np.random.Generator, shape: tuple[int, int] = (96, 96)) -> np.ndarray:
    """Low-frequency random picture in [0, 200] (8 x 8 noise upsampled): distinct, like real slices are."""
    coarse = rng.uniform(0, 200, (8, 8)).astype(np.float32)
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def volume(pixels: np.ndarray) -> Case:
    return Case(pixels=pixels, kind="volume", modality="MR", source_files=[Path("synthetic")], fingerprint="x",
                spacing=(1.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def encoder(tiny_model: Path) -> Encoder:
    return Encoder(tiny_model)


def test_planted_slice_is_matched_at_its_index(encoder: Encoder) -> None:
    rng = np.random.default_rng(3)
    query = np.stack([smooth_random_image(rng) for _ in range(20)])  # Z Y X
    result = np.stack([smooth_random_image(rng) for _ in range(30)])
    result[19] = query[7]
    match = match_positions(encoder, volume(query), volume(result))
    assert match.similarity.shape == (20, 30)
    position, score = match.best_for(7)
    assert position == 19  # (not exactly 1.0: each volume is intensity-scaled over its own percentiles)
    assert score > np.sort(match.similarity[7])[-2]
    assert match.best_pair()[:2] == (7, 19)
    positions, sims = match.profile(7)
    assert len(positions) == 30 and int(np.argmax(sims)) == 19


def test_long_cases_are_sampled_and_the_nearest_row_is_used(encoder: Encoder) -> None:
    yy, xx = np.mgrid[:64, :64]
    # a bright blob moving smoothly across the slices: neighbouring slices look alike, as in a real volume
    query = np.stack([200.0 * np.exp(-((yy - 32) ** 2 + (xx - 4 - 0.56 * z) ** 2) / 60.0) for z in range(100)])
    positions = explained_positions(volume(query), max_positions=10)
    assert len(positions) == 10 and positions[0] >= 0 and positions[-1] < 100
    result = query[::-1].copy()  # the same slices in reverse order
    match = match_positions(encoder, volume(query), volume(result), max_positions=10)
    q = int(positions[3])
    matched, _ = match.best_for(q + 1)  # not an explained position: its nearest explained one is used
    assert abs(matched - (99 - q)) <= 100 // 10  # the reversed slice, within one sampling step


def test_heatmap_peaks_where_the_pair_differs(encoder: Encoder) -> None:
    rng = np.random.default_rng(5)
    base = smooth_random_image(rng, (128, 128))
    planted = base.copy()
    planted[32:64, 80:112] = 255.0  # a bright block over cells (2..3, 5..6) of the 8 x 8 grid
    as_case = lambda pixels: Case(pixels=pixels, kind="image2d", modality="XR",  # noqa: E731
                                  source_files=[Path("synthetic.png")], fingerprint="x")
    heat = occlusion_heatmaps(encoder, as_case(planted), as_case(base), grid=8)
    assert heat.query_grid.shape == (8, 8) and heat.query.shape == (128, 128)
    row, col = np.unravel_index(int(np.argmin(heat.query_grid)), (8, 8))  # hiding it raises the score most
    assert 2 <= row <= 3 and 5 <= col <= 6, heat.query_grid
    block = np.zeros((8, 8), bool)
    block[2:4, 5:7] = True
    assert heat.query_grid[block].min() < 2 * heat.query_grid[~block].min()  # a clear peak, not noise
    # the frame-space map agrees with the grid: its most negative pixel is inside the block
    y, x = np.unravel_index(int(np.argmin(heat.query)), heat.query.shape)
    assert 24 <= y < 72 and 72 <= x < 120
    # identical images: nothing works against the match
    same = occlusion_heatmaps(encoder, as_case(base), as_case(base), grid=4)
    assert same.score == pytest.approx(1.0, abs=1e-4) and same.query_grid.min() >= -1e-4


def test_occluded_clips_hide_one_cell_each() -> None:
    clip = np.random.default_rng(0).uniform(size=(3, 2, 16, 16)).astype(np.float32)
    clips = occluded_clips(clip, 4)
    assert len(clips) == 16
    changed = np.stack([(c != clip).any(axis=(0, 1)) for c in clips])  # 16 S S
    assert changed.sum(axis=(1, 2)).max() <= 16 and changed[5][4:8, 4:8].all() and not changed[5][:4].any()


def test_grid_to_frame_skips_the_padding() -> None:
    grid = np.zeros((4, 4), np.float32)
    grid[:, 0] = 1.0  # left column of the model's square
    wide = grid_to_frame(grid, (50, 200), size=128, aspect=1.0)  # a wide frame fills the square's width
    assert wide.shape == (50, 200) and wide[:, :10].mean() > 0.9 and wide[:, 100:].max() < 0.1
    tall = grid_to_frame(grid, (200, 50), size=128, aspect=1.0)  # a tall one sits in the middle columns
    assert tall.shape == (200, 50) and tall.max() < 0.1  # the left column was padding


def test_overlay_colours_sign_and_fade() -> None:
    heat = np.array([[1.0, -1.0], [0.0, 0.5]], np.float32)
    colours, weight = heatmap_colours(heat)
    assert colours[0, 0, 0] == 255 and colours[0, 1, 2] == 255  # warm supports, cool works against
    assert weight.tolist() == [[1.0, 1.0], [0.0, 0.5]]
    frame = np.full((2, 2, 3), 100, np.uint8)
    assert (overlay(frame, heat, alpha=0.0) == frame).all()
    assert (overlay(frame, heat, alpha=1.0)[1, 0] == frame[1, 0]).all()  # zero magnitude: untouched

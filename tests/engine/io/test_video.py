"""Video reader on clips written by OpenCV in the test: sampling, grey/colour, colour order, limits, bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.config import ReadLimits
from engine.io.case import ReadError
from engine.io.video import read_video
from engine.preprocess import sample_indices

N_FRAMES = 40
STEP = 5  # frame i is filled with grey level STEP * i


def _write(path: Path, frames: list[np.ndarray], fourcc: str, fps: float = 10.0) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height), True)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def _grey_ramp(n: int = N_FRAMES) -> list[np.ndarray]:
    return [np.full((48, 64, 3), STEP * i, np.uint8) for i in range(n)]


@pytest.mark.parametrize(("suffix", "fourcc"), [(".mp4", "mp4v"), (".avi", "MJPG")])
def test_grey_clip_is_sampled_uniformly(tmp_path: Path, suffix: str, fourcc: str) -> None:
    path = _write(tmp_path / f"ramp{suffix}", _grey_ramp(), fourcc)
    case = read_video(path, ReadLimits(video_frames=8))
    assert case.kind == "video"
    assert case.modality == "OT"
    assert case.shape == (8, 48, 64)  # grey: T H W
    assert not case.is_color
    assert case.frame_count == N_FRAMES
    assert case.fps == pytest.approx(10.0)
    np.testing.assert_array_equal(case.frame_indices, sample_indices(N_FRAMES, 8))
    means = case.pixels.reshape(8, -1).mean(axis=1)
    np.testing.assert_allclose(means, STEP * case.frame_indices, atol=3)  # the right frames, in order


def test_all_frames_when_no_budget(tmp_path: Path) -> None:
    path = _write(tmp_path / "ramp.avi", _grey_ramp(12), "MJPG")
    case = read_video(path, ReadLimits(video_frames=None))
    assert case.shape[0] == 12
    np.testing.assert_array_equal(case.frame_indices, np.arange(12))
    budget_larger = read_video(path, ReadLimits(video_frames=64))
    assert budget_larger.shape[0] == 12  # never duplicates frames


@pytest.mark.parametrize(("suffix", "fourcc"), [(".mp4", "mp4v"), (".avi", "MJPG")])
def test_pure_red_comes_out_red(tmp_path: Path, suffix: str, fourcc: str) -> None:
    red_bgr = np.zeros((48, 64, 3), np.uint8)
    red_bgr[..., 2] = 255
    path = _write(tmp_path / f"red{suffix}", [red_bgr] * 10, fourcc)
    case = read_video(path, ReadLimits(video_frames=4))
    assert case.is_color
    assert case.shape == (4, 48, 64, 3)
    mean_rgb = case.pixels.reshape(-1, 3).mean(axis=0)
    assert mean_rgb[0] > 200 and mean_rgb[1] < 40 and mean_rgb[2] < 40, mean_rgb


def test_container_announcing_more_frames_than_it_holds(tmp_path: Path) -> None:
    full = _write(tmp_path / "full.avi", _grey_ramp(), "MJPG")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])  # AVI header still announces 40 frames
    case = read_video(cut, ReadLimits(video_frames=8))
    assert case.metadata["frames_announced"] == str(N_FRAMES)
    assert 0 < case.frame_count < N_FRAMES
    assert case.shape[0] == min(8, case.frame_count)  # re-sampled over the frames that exist
    assert case.frame_indices.max() < case.frame_count
    means = case.pixels.reshape(case.shape[0], -1).mean(axis=1)
    np.testing.assert_allclose(means, STEP * case.frame_indices, atol=3)


def test_limits_refuse_before_decoding(tmp_path: Path) -> None:
    path = _write(tmp_path / "ramp.avi", _grey_ramp(), "MJPG")
    with pytest.raises(ReadError, match="frames"):
        read_video(path, ReadLimits(max_frames=10))
    with pytest.raises(ReadError, match="pixels"):
        read_video(path, ReadLimits(max_image_pixels=1000))
    with pytest.raises(ReadError, match="bytes"):  # 8 frames x 48 x 64 x 3 = 73728 bytes
        read_video(path, ReadLimits(video_frames=8, max_decompressed_bytes=73727))
    assert read_video(path, ReadLimits(video_frames=8, max_decompressed_bytes=73728)).shape[0] == 8


def test_shared_ultrasound_videos(shared_data: Path) -> None:
    paths = sorted((shared_data / "ultrasound").rglob("*.mp4"))[:3]
    assert paths
    for path in paths:
        case = read_video(path)
        assert case.kind == "video"
        assert case.pixels.dtype == np.uint8
        assert case.shape[0] == min(64, case.frame_count)
        assert len(case.frame_indices) == case.shape[0]


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage" * 500], ids=["zero-byte", "garbage"])
def test_bad_files_raise_read_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(ReadError) as err:
        read_video(path)
    assert str(err.value) and "\n" not in str(err.value)


def test_tinted_clip_stays_colour(tmp_path: Path) -> None:
    grey = np.random.default_rng(3).integers(40, 200, (48, 64), dtype=np.uint8).astype(np.int16)
    sepia_bgr = np.dstack([grey - 20, grey, grey + 20]).astype(np.uint8)  # a mild tint, like some ultrasound
    path = _write(tmp_path / "sepia.avi", [sepia_bgr] * 6, "MJPG")
    case = read_video(path, ReadLimits(video_frames=3))
    assert case.is_color
    r, _, b = case.pixels.reshape(-1, 3).astype(float).mean(axis=0)
    assert r - b > 20  # red stays on the red channel


def test_large_frames_are_shrunk_as_they_are_read(tmp_path: Path) -> None:
    from engine.config import ReadLimits

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48), True)
    for i in range(6):
        writer.write(np.full((48, 64, 3), 30 * i, np.uint8))
    writer.release()
    case = read_video(path, ReadLimits(max_video_frame_samples=64 * 48 * 3 // 4))  # a quarter of the values
    assert case.pixels.shape == (6, 24, 32)

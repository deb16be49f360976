"""Video files (mp4, avi, mov, mkv, webm) -> ``video`` Case, via OpenCV.

Frame count and frame size come from the container first and are checked against ``ReadLimits``; then
``limits.video_frames`` frames are sampled uniformly (``engine.preprocess.sample_indices``) by grabbing and
seeking, so only the sampled frames are ever held in memory, each shrunk to ``max_video_frame_samples`` values
as it is read (a 4096x4096 clip holds about 1080p frames). Containers can announce more frames than they hold:
the reader stops at the real end and, if that left too few frames, samples again over the frames that exist.
Frames are grey when the three channels agree (up to compression noise), else RGB. ``modality`` is ``"OT"``:
a video file does not say what it shows (a manifest or the caller may know better).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from engine.config import DEFAULT_LIMITS, ReadLimits
from engine.io.case import Case, ReadError
from engine.io.decoder_log import decoder_messages_to_log
from engine.io.fingerprint import file_fingerprint
from engine.io.reduce import shrink_to_fit
from engine.preprocess import sample_indices

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm"})
SEEK_GAP = 64  # seek instead of grabbing when the next wanted frame is further ahead than this
GREY_MEAN_SPREAD = 3.0  # mean (max - min channel) still called grey, see _is_grey
GREY_PIXEL_SPREAD = 24  # a pixel whose channels spread more than this is coloured


class _Capture:
    """A cv2.VideoCapture that is always released."""

    def __init__(self, path: Path) -> None:
        self.cap = cv2.VideoCapture(str(path))

    def __enter__(self) -> cv2.VideoCapture:
        return self.cap

    def __exit__(self, *exc: object) -> None:
        self.cap.release()


def _count_frames(path: Path, limits: ReadLimits) -> int:
    """Count frames by grabbing (for containers that do not announce a count)."""
    count = 0
    with _Capture(path) as cap:
        while count <= limits.max_frames and cap.grab():
            count += 1
    if count > limits.max_frames:
        raise ReadError(f"video has more than {limits.max_frames} frames (limit)")
    return count


def _read_frames(path: Path, wanted: np.ndarray, max_samples: int
                 ) -> tuple[list[np.ndarray], list[int], int | None]:
    """Decode the ``wanted`` (sorted, unique) frame indices, each shrunk to at most ``max_samples`` values as it is
    read; returns frames, their indices and the real frame count if the clip ended early (None otherwise)."""
    frames: list[np.ndarray] = []
    got: list[int] = []
    position = 0  # index of the frame the next grab() returns
    with _Capture(path) as cap:
        if not cap.isOpened():
            raise ReadError("cannot open video (not a video or unsupported codec)")
        for index in (int(i) for i in wanted):
            if index - position > SEEK_GAP:
                cap.set(cv2.CAP_PROP_POS_FRAMES, index)
                position = index
            while position < index:
                if not cap.grab():
                    return frames, got, position
                position += 1
            ok, frame = cap.read()
            if not ok or frame is None:
                return frames, got, position
            position += 1
            frames.append(shrink_to_fit(frame, max_samples)[0])
            got.append(index)
    return frames, got, None


def _is_grey(frames: np.ndarray) -> bool:
    """True when the channels agree up to compression noise. frames: T H W 3.

    Lossy chroma leaves grey clips with a mean channel spread of 0-2 levels and a few pixels up to ~10; tinted
    or colour clips show a mean spread above 10. A tiny coloured overlay (< 0.1 % of pixels) still counts as grey.
    """
    b, g, r = frames[..., 0], frames[..., 1], frames[..., 2]  # (max over a size-3 axis is slow in numpy)
    spread = np.maximum(np.maximum(b, g), r).astype(np.int16) - np.minimum(np.minimum(b, g), r)  # T H W
    return bool(spread.mean() <= GREY_MEAN_SPREAD and (spread > GREY_PIXEL_SPREAD).mean() < 0.001)


def read_video(path: Path | str, limits: ReadLimits = DEFAULT_LIMITS) -> Case:
    """Read a video file as a ``video`` Case: ``T H W`` grey or ``T H W 3`` RGB uint8, frames sampled uniformly.

    FFmpeg's own warnings go to the log (``engine.io.decoder_log``), not to the terminal."""
    with decoder_messages_to_log(path):
        return _read_video(Path(path), limits)


def _read_video(path: Path, limits: ReadLimits) -> Case:
    if path.stat().st_size == 0:
        raise ReadError("empty file")
    with _Capture(path) as cap:
        if not cap.isOpened():
            raise ReadError("cannot open video (not a video or unsupported codec)")
        announced = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
    if width * height > limits.max_image_pixels:
        raise ReadError(f"video frames of {width}x{height} pixels exceed the limit of {limits.max_image_pixels}")
    if announced > limits.max_frames:
        raise ReadError(f"video announces {announced} frames, more than the limit of {limits.max_frames}")
    frame_count = announced if announced > 0 else _count_frames(path, limits)
    if frame_count < 1:
        raise ReadError("video holds no frames")

    def wanted_for(count: int) -> np.ndarray:
        if limits.video_frames is None or limits.video_frames >= count:
            return np.arange(count)
        return np.unique(sample_indices(count, limits.video_frames))

    wanted = wanted_for(frame_count)
    if width * height * 3 > limits.max_frame_bytes:
        raise ReadError(f"refused: video frames of {width}x{height} exceed {limits.max_frame_bytes} bytes each")
    kept_samples = min(width * height * 3, limits.max_video_frame_samples)  # frames are shrunk to this as read
    if len(wanted) * kept_samples > limits.max_decompressed_bytes:
        raise ReadError(f"{len(wanted)} frames of {width}x{height} exceed {limits.max_decompressed_bytes} bytes")
    frames, got, real_count = _read_frames(path, wanted, limits.max_video_frame_samples)
    if real_count is not None:  # the container announced more frames than it holds
        log.debug("%s: container announced %d frames, %d decodable", path, frame_count, real_count)
        frame_count = real_count
        if real_count > 0 and len(frames) < len(wanted_for(real_count)):
            frames, got, _ = _read_frames(path, wanted_for(real_count), limits.max_video_frame_samples)
    if not frames:
        raise ReadError("no decodable frames in video")
    if len({f.shape for f in frames}) != 1:
        raise ReadError("video frames change size mid-stream")
    stack = np.stack(frames)  # T H W 3 (BGR)
    if stack.ndim == 3:
        pixels = stack  # already grey
    elif _is_grey(stack):
        pixels = np.ascontiguousarray(stack[..., 1])  # T H W
    else:
        pixels = np.ascontiguousarray(stack[..., ::-1])  # T H W 3, BGR -> RGB
    return Case(
        pixels=pixels,
        kind="video",
        modality="OT",
        source_files=[path],
        fingerprint=file_fingerprint(path),
        fps=fps if fps > 0 else None,
        frame_count=frame_count,
        frame_indices=np.asarray(got, dtype=np.int64),
        metadata={"format": path.suffix.lower().lstrip("."), "frames_announced": str(announced)},
        uid=str(path.resolve()),
    )

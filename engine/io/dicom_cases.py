"""Build ``Case`` objects from DICOM headers + pixels: slice stacks, enhanced multi-frame, mosaics, cines, images.

Each builder receives headers already read (no pixels) and the limits; it checks the limits, then decodes.
Builders raise ``ReadError`` (one-line reason) for what they cannot read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from engine.config import ReadLimits
from engine.io.case import Case, Failure, ReadError
from engine.io.dicom_geometry import (
    POSITION_TOLERANCE_MM,
    FrameStack,
    frame_geometry,
    slice_normal,
    sort_by_position,
    spacing_irregularity,
    spacing_zyx,
    stack_affine,
    to_canonical,
)
from engine.io.dicom_headers import catalog_modality, fingerprint, metadata, number_of_frames
from engine.io.dicom_mosaic import mosaic_slice_count, read_mosaic
from engine.io.dicom_pixels import check_limits, decode, grey_values
from engine.io.reduce import shrink_to_fit
from engine.io.dicom_video import is_encapsulated_video, read_encapsulated_video
from engine.preprocess import sample_indices

Item = tuple[Path, Dataset]  # a file and its header (read without pixels)


def volume_from_slices(items: Sequence[Item], limits: ReadLimits, dropped: list[Failure] | None = None) -> Case:
    """One volume from single-frame slices sorted by position along the normal (first volume of a 4D series).

    With ``dropped``, slices that cannot be decoded or whose size differs from the others' are appended to it
    as Failures and ``ReadError`` is raised, so the caller can build the volume again without them."""
    header = items[0][1]
    orientation = np.asarray([float(v) for v in header.ImageOrientationPatient])
    positions = np.asarray([[float(v) for v in ds.ImagePositionPatient] for _, ds in items])
    order, distances = sort_by_position(positions, orientation)
    kept = _first_volume(order, distances, [ds for _, ds in items])
    check_limits(header, len(kept), limits)
    slices, paths = [], []
    for i in kept:
        path, ds = items[i]
        try:
            frames = decode(path, ds)  # 1 H W [C]
        except ReadError as exc:
            if dropped is None:
                raise
            dropped.append(Failure(path, f"slice left out of its series' volume: {exc}"))
            continue
        slices.append(frames[0] if _is_color(ds) else grey_values(frames, ds)[0])
        paths.append(path)
    shapes = [s.shape for s in slices]
    if len(set(shapes)) > 1 and dropped is not None:
        common = max(set(shapes), key=shapes.count)
        dropped += [Failure(p, f"slice of size {s} left out of its series' volume of {common} slices")
                    for p, s in zip(paths, shapes) if s != common]
    if dropped:
        raise ReadError(f"{len(dropped)} slice(s) left out")
    if len(set(shapes)) != 1:
        raise ReadError(f"slices of different sizes in one series: {sorted(set(shapes))}")
    pixels = np.stack(slices)  # Z Y X [C]
    affine = stack_affine(orientation, _pixel_spacing(header), positions[kept[0]], positions[kept[-1]], len(kept))
    pixels, affine = to_canonical(pixels, affine)
    notes = {"slices": str(len(kept))}
    if len(kept) < len(items):
        notes["note"] = f"{len(items) // len(kept)} files per position (4D or multi-echo): first volume used"
    kept_distances = positions[kept] @ slice_normal(orientation)
    irregular = spacing_irregularity(kept_distances)
    if irregular > max(0.1, 0.01 * abs(float(kept_distances[-1] - kept_distances[0]))):
        notes["spacing_warning"] = f"irregular slice spacing (max deviation {irregular:.2f} mm)"
    return _case(pixels, "volume", items, header, affine=affine, spacing=spacing_zyx(affine), extra=notes)


def volume_from_mosaics(items: Sequence[Item], limits: ReadLimits) -> Case:
    """The first volume (lowest AcquisitionNumber / InstanceNumber) of a series of Siemens mosaics."""
    ordered = sorted(items, key=lambda item: _volume_rank(item[1]))
    path, header = ordered[0]
    n_slices = mosaic_slice_count(header)
    check_limits(header, 1, limits)
    stored, affine = read_mosaic(path, header)  # Z Y X
    if stored.shape[0] != n_slices:
        raise ReadError(f"mosaic unpacked to {stored.shape[0]} slices, CSA header says {n_slices}")
    pixels = grey_values(stored, header, np.zeros(len(stored), dtype=np.int64))
    pixels, affine = to_canonical(pixels, affine)
    notes = {"slices": str(n_slices), "mosaic": "Siemens mosaic"}
    if len(items) > 1:
        notes["note"] = f"4D series of {len(items)} mosaic volumes: first volume used"
    return _case(pixels, "volume", items, header, affine=affine, spacing=spacing_zyx(affine), extra=notes)


def case_from_file(path: Path, header: Dataset, limits: ReadLimits) -> Case:
    """A single file: enhanced multi-frame volume, cine (video) or one 2D image."""
    if is_encapsulated_video(header):
        return video_from_bitstream(path, header, limits)
    n_frames = number_of_frames(header)
    if n_frames == 1:
        return image_from_file(path, header, limits)
    stack = frame_geometry(header)
    if stack is not None and np.ptp(stack.positions @ slice_normal(stack.orientation)) > POSITION_TOLERANCE_MM:
        return volume_from_frames(path, header, stack, limits)
    if catalog_modality(header) in {"CT", "MR", "PT"}:
        return volume_from_frames(path, header, None, limits)
    return video_from_file(path, header, limits)


def image_from_file(path: Path, header: Dataset, limits: ReadLimits) -> Case:
    """A single-frame image (X-ray, ultrasound still, one CT/MR slice, secondary capture)."""
    check_limits(header, 1, limits)
    frames = decode(path, header)  # 1 H W [C]
    frame, shrunk = shrink_to_fit(frames[0], limits.max_frame_samples)  # before rescaling multiplies its bytes
    del frames
    pixels = frame if _is_color(header) else grey_values(frame[None], header)[0]
    spacing = _pixel_spacing(header, default=None)
    extra = {"SOPInstanceUID": str(header.get("SOPInstanceUID", ""))}
    if shrunk > 1:
        spacing = tuple(s * shrunk for s in spacing) if spacing else spacing
        extra["reduced_by"] = f"{shrunk:.3g}"
    return _case(pixels, "image2d", [(path, header)], header, spacing=spacing or (), extra=extra)


def volume_from_frames(path: Path, header: Dataset, stack: FrameStack | None, limits: ReadLimits) -> Case:
    """A volume from an enhanced multi-frame CT/MR (per-frame positions; frame order when there are none)."""
    notes: dict[str, str] = {}
    if stack is None:
        check_limits(header, 1, limits)
        pixels = grey_values(decode(path, header), header)  # Z Y X in file order
        notes["geometry_warning"] = "no per-frame positions: frames kept in file order, no affine"
        return _case(pixels, "volume", [(path, header)], header, extra=notes)
    order, distances = sort_by_position(stack.positions, stack.orientation)
    kept = _first_volume(order, distances, None)  # indices into the stack, inferior to superior
    frame_ids = stack.frame_ids[kept]
    if len(kept) < stack.n_frames:
        notes["note"] = f"{stack.n_frames} frames at {len(kept)} positions of one plane: first frame at each used"
    check_limits(header, 1, limits, frames_used=len(frame_ids))
    frames = decode(path, header, frame_ids if len(frame_ids) < stack.n_frames else None)  # all, or just these
    pixels = grey_values(frames if len(frame_ids) < stack.n_frames else frames[frame_ids], header, frame_ids)
    positions = stack.positions[kept]
    affine = stack_affine(stack.orientation, stack.pixel_spacing, positions[0], positions[-1], len(kept))
    pixels, affine = to_canonical(pixels, affine)  # Z Y X
    notes["slices"] = str(len(kept))
    return _case(pixels, "volume", [(path, header)], header, affine=affine, spacing=spacing_zyx(affine), extra=notes)


def video_from_file(path: Path, header: Dataset, limits: ReadLimits) -> Case:
    """A cine (ultrasound, endoscopy, XA...): at most ``limits.video_frames`` frames, sampled uniformly."""
    n_frames = number_of_frames(header)
    budget = limits.video_frames
    indices = sample_indices(n_frames, budget) if budget and n_frames > budget else np.arange(n_frames)
    check_limits(header, 1, limits, frames_used=len(indices))
    sampled = len(indices) < n_frames
    frames = decode(path, header, indices if sampled else None)  # T H W [C]
    pixels = frames if _is_color(header) else grey_values(frames, header, indices)
    case = _case(pixels, "video", [(path, header)], header, spacing=_pixel_spacing(header, default=None) or ())
    case.fps = _frame_rate(header)
    case.frame_count = n_frames
    case.frame_indices = np.asarray(indices, dtype=np.int64)
    case.metadata["SOPInstanceUID"] = str(header.get("SOPInstanceUID", ""))
    return case


def video_from_bitstream(path: Path, header: Dataset, limits: ReadLimits) -> Case:
    """A cine stored as an MPEG-2 / H.264 / HEVC bitstream, sampled like a video file."""
    n_frames = number_of_frames(header)
    check_limits(header, 1, limits, frames_used=min(n_frames, limits.video_frames or n_frames))
    decoded = read_encapsulated_video(path, header, limits)
    case = _case(decoded.pixels, "video", [(path, header)], header, spacing=_pixel_spacing(header, default=None) or ())
    case.fps = _frame_rate(header) or decoded.fps
    case.frame_count = decoded.frame_count
    case.frame_indices = decoded.frame_indices
    case.metadata["SOPInstanceUID"] = str(header.get("SOPInstanceUID", ""))
    return case


def _case(
    pixels: np.ndarray,
    kind: str,
    items: Sequence[Item],
    header: Dataset,
    *,
    affine: np.ndarray | None = None,
    spacing: tuple[float, ...] = (),
    extra: dict[str, str] | None = None,
) -> Case:
    modality = catalog_modality(header)
    meta = metadata(header) | (extra or {})
    series_uid = str(header.get("SeriesInstanceUID", "") or "")
    sop_uid = str(header.get("SOPInstanceUID", "") or "")
    paths = [path for path, _ in items]
    if kind == "volume":
        uid = series_uid or str(paths[0].parent)
    else:
        uid = f"{series_uid}/{sop_uid}" if series_uid and sop_uid else str(paths[0])
    grey = pixels.ndim == (2 if kind == "image2d" else 3)
    return Case(
        pixels=pixels,
        kind=kind,  # type: ignore[arg-type]
        modality=modality,
        source_files=paths,
        fingerprint=fingerprint(paths),
        spacing=tuple(float(s) for s in spacing),
        affine=affine,
        intensity="HU" if modality == "CT" and grey else "raw",
        metadata=meta,
        uid=uid,
    )


def _first_volume(order: np.ndarray, sorted_distances: np.ndarray, headers: Sequence[Dataset] | None) -> np.ndarray:
    """For each distinct position (in ascending order) the index of its first-volume slice."""
    groups: list[list[int]] = []
    previous = None
    for index, distance in zip(order, sorted_distances):
        if previous is None or distance - previous > POSITION_TOLERANCE_MM:
            groups.append([])
        groups[-1].append(int(index))
        previous = distance
    if headers is None:
        return np.asarray([min(group) for group in groups], dtype=np.int64)
    return np.asarray([min(group, key=lambda i: _volume_rank(headers[i])) for group in groups], dtype=np.int64)


def _volume_rank(ds: Dataset) -> tuple[float, ...]:
    """Sort key putting the first time point / acquisition / echo first."""
    keys = ("TemporalPositionIdentifier", "AcquisitionNumber", "EchoNumbers", "InstanceNumber")
    return tuple(_number(ds.get(k)) for k in keys)


def _number(value: object) -> float:
    """A numeric header value (first of a multi-value) as float; +inf when absent or not a number."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        value = value[0] if len(value) else None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("inf")


def _is_color(ds: Dataset) -> bool:
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    return int(ds.get("SamplesPerPixel") or 1) == 3 or photometric == "PALETTE COLOR"


def _pixel_spacing(ds: Dataset, default: tuple[float, float] | None = (1.0, 1.0)) -> tuple[float, float] | None:
    """(row, column) spacing in mm: PixelSpacing, ImagerPixelSpacing, or ultrasound region deltas."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        value = ds.get(keyword)
        if value is not None and len(value) == 2 and float(value[0]) > 0 and float(value[1]) > 0:
            return float(value[0]), float(value[1])
    regions = ds.get("SequenceOfUltrasoundRegions") or []
    for region in regions:
        dx, dy = region.get("PhysicalDeltaX"), region.get("PhysicalDeltaY")
        if region.get("PhysicalUnitsXDirection") == 3 and dx and dy:  # 3 = cm
            return abs(float(dy)) * 10.0, abs(float(dx)) * 10.0
    return default


def _frame_rate(ds: Dataset) -> float | None:
    """Frames per second from FrameTime (ms), FrameTimeVector, CineRate or RecommendedDisplayFrameRate."""
    frame_time = _number(ds.get("FrameTime"))
    if np.isfinite(frame_time) and frame_time > 0:
        return 1000.0 / frame_time
    vector = ds.get("FrameTimeVector")
    if vector is not None and len(vector) > 1:
        mean = float(np.mean([float(v) for v in list(vector)[1:]]))
        if mean > 0:
            return 1000.0 / mean
    for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = _number(ds.get(keyword))
        if np.isfinite(rate) and rate > 0:
            return rate
    return None

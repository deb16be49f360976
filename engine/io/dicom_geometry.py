"""Slice geometry: sort slices along their normal, build the index->LPS affine, reorient to canonical LPS+.

Conventions (see ``engine.io.case``): the affine maps ``(column, row, slice, 1)`` to patient LPS millimetres;
canonical arrays are ``Z Y X`` with column -> Left, row -> Posterior, slice -> Superior.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from nibabel import orientations
from pydicom.dataset import Dataset

POSITION_TOLERANCE_MM = 0.01  # slices closer than this along the normal share one position


def slice_normal(orientation: np.ndarray) -> np.ndarray:
    """Unit normal of the image plane: cross(row direction, column direction) from ImageOrientationPatient."""
    row_dir, col_dir = np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float)
    normal = np.cross(row_dir, col_dir)
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        raise ValueError("degenerate ImageOrientationPatient")
    return normal / norm


def sort_by_position(positions: np.ndarray, orientation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order of slices along the plane normal (ascending) and their distances; ``positions`` is N x 3."""
    distances = np.asarray(positions, float) @ slice_normal(orientation)  # N
    order = np.argsort(distances, kind="stable")
    return order, distances[order]


def first_of_each_position(sorted_distances: np.ndarray) -> np.ndarray:
    """Indices (into the sorted list) of the first slice at each distinct position."""
    if len(sorted_distances) == 0:
        return np.zeros(0, dtype=np.int64)
    keep = np.concatenate([[True], np.diff(sorted_distances) > POSITION_TOLERANCE_MM])
    return np.flatnonzero(keep)


def stack_affine(
    orientation: np.ndarray, pixel_spacing: tuple[float, float], first: np.ndarray, last: np.ndarray, n: int
) -> np.ndarray:
    """4x4 affine of a stack from its first and last slice positions (gantry tilt kept).

    ``pixel_spacing`` is DICOM PixelSpacing: (between rows, between columns).
    """
    row_dir, col_dir = np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float)
    affine = np.eye(4)
    affine[:3, 0] = row_dir * float(pixel_spacing[1])  # column index walks along a row
    affine[:3, 1] = col_dir * float(pixel_spacing[0])  # row index walks down a column
    if n > 1:
        affine[:3, 2] = (np.asarray(last, float) - np.asarray(first, float)) / (n - 1)
    else:
        affine[:3, 2] = slice_normal(orientation)
    affine[:3, 3] = np.asarray(first, float)
    return affine


def to_canonical(pixels: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient ``Z Y X [C]`` pixels and their affine to the closest canonical LPS+ axes."""
    ornt = orientations.io_orientation(affine)  # per index axis (x, y, z): world axis + flip
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return pixels, affine
    xyz = np.swapaxes(pixels, 0, 2)  # X Y Z [C]
    shape = xyz.shape[:3]
    reoriented = orientations.apply_orientation(xyz, ornt)  # X' Y' Z' [C] along L P S
    new_affine = affine @ orientations.inv_ornt_aff(ornt, shape)
    return np.ascontiguousarray(np.swapaxes(reoriented, 0, 2)), new_affine


def spacing_zyx(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size (mm) along the Z Y X axes of a canonical array."""
    sizes = np.linalg.norm(affine[:3, :3], axis=0)  # along x, y, z
    return float(sizes[2]), float(sizes[1]), float(sizes[0])


def spacing_irregularity(sorted_distances: np.ndarray) -> float:
    """Largest deviation (mm) of consecutive slice gaps from their median (0 for < 3 slices)."""
    if len(sorted_distances) < 3:
        return 0.0
    gaps = np.diff(sorted_distances)
    return float(np.max(np.abs(gaps - np.median(gaps))))


@dataclass(frozen=True)
class FrameStack:
    """The frames of an enhanced multi-frame object that share one orientation, with their geometry."""

    frame_ids: np.ndarray  # source frame numbers, file order
    positions: np.ndarray  # len(frame_ids) x 3, ImagePositionPatient of each
    orientation: np.ndarray  # 6, ImageOrientationPatient
    pixel_spacing: tuple[float, float]  # (between rows, between columns)
    n_frames: int  # frames in the file


def frame_geometry(ds: Dataset) -> FrameStack | None:
    """Geometry of an enhanced multi-frame object from its per-frame / shared functional groups.

    Frames of the most common orientation are kept (a localiser may hold several planes); None when the frames
    carry no positions.
    """
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    shared_orientation = _macro_value(shared, "PlaneOrientationSequence", "ImageOrientationPatient")
    shared_orientation = shared_orientation or ds.get("ImageOrientationPatient")
    positions, orientations, spacing = [], [], None
    for item in per_frame:
        position = _macro_value(item, "PlanePositionSequence", "ImagePositionPatient")
        orientation = _macro_value(item, "PlaneOrientationSequence", "ImageOrientationPatient") or shared_orientation
        if position is None or len(position) != 3 or orientation is None or len(orientation) != 6:
            return None
        positions.append([float(v) for v in position])
        orientations.append(tuple(round(float(v), 3) for v in orientation))
        spacing = spacing or _macro_value(item, "PixelMeasuresSequence", "PixelSpacing")
    if not positions:
        return None
    spacing = spacing or _macro_value(shared, "PixelMeasuresSequence", "PixelSpacing") or ds.get("PixelSpacing")
    row_col = (float(spacing[0]), float(spacing[1])) if spacing and len(spacing) == 2 else (1.0, 1.0)
    common = Counter(orientations).most_common(1)[0][0]
    frame_ids = np.asarray([i for i, o in enumerate(orientations) if o == common], dtype=np.int64)
    return FrameStack(frame_ids, np.asarray(positions)[frame_ids], np.asarray(common, float), row_col, len(positions))


def _macro_value(item: Dataset | None, macro: str, keyword: str) -> object | None:
    if item is None or not item.get(macro):
        return None
    return item.get(macro)[0].get(keyword)

"""The DICOM reader: recognise DICOM files, group them into series from headers only, read a series into Cases.

Typical use::

    for group in group_dicom_series(paths):
        if isinstance(group, Failure):
            report(group)
            continue
        series_key, files = group
        for case_or_failure in read_dicom_series(files):
            ...

Grouping reads headers only (``stop_before_pixels``, ``specific_tags``): files are grouped by SeriesInstanceUID,
split further by orientation and image size; multi-frame objects and images without slice positions are each a
group of their own. Non-image objects (SR, RT, PR, KO, SEG, DICOMDIR...) yield ``Failure(path, "skipped: not
an image (...)")``. Logs never name patients: only paths, series keys and reasons.

Reading a group gives: a ``volume`` for slices at several positions (sorted along the plane normal, first volume
of a 4D series), for an enhanced multi-frame CT/MR, or for a Siemens mosaic series; a ``video`` for a cine
(US, XA, ES..., native or MPEG-encapsulated); an ``image2d`` for anything else. ``Case.uid`` is the
SeriesInstanceUID for volumes and ``SeriesInstanceUID/SOPInstanceUID`` for single images and cines.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from engine.config import DEFAULT_LIMITS, ReadLimits
from engine.io.case import Case, Failure, ReadError
from engine.io.dicom_cases import Item, case_from_file, volume_from_mosaics, volume_from_slices
from engine.io.dicom_geometry import POSITION_TOLERANCE_MM, slice_normal
from engine.io.dicom_headers import (
    GROUPING_TAGS,
    has_slice_geometry,
    is_dicomdir,
    is_mosaic,
    not_image_reason,
    number_of_frames,
    one_line,
    read_deferred,
    read_header,
)

log = logging.getLogger(__name__)

__all__ = ["dicomdir_referenced_files", "group_dicom_series", "looks_like_dicom", "read_dicom_series"]

# First two bytes of a preamble-less file: group 0x0002 (file meta) or 0x0008, little or big endian.
_GROUP_STARTS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")
# Names under which preamble-less DICOM is common (no extension: IM0001, MR.1.3.12...).
_DICOM_SUFFIXES = frozenset({"", ".dcm", ".dicom", ".dic", ".ima"})


def looks_like_dicom(path: Path) -> bool:
    """Cheap check: 'DICM' at offset 128, or a preamble-less file whose header pydicom parses. Never reads pixels."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    if len(head) == 132 and head[128:132] == b"DICM":
        return True
    if head[:2] not in _GROUP_STARTS and not _maybe_dicom_name(path):
        return False
    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True, specific_tags=["SOPClassUID", "Modality"])
    except Exception:  # not parseable as DICOM
        return False
    return bool(ds.get("SOPClassUID") or ds.get("Modality"))


def group_dicom_series(
    paths: Sequence[Path], limits: ReadLimits = DEFAULT_LIMITS
) -> Iterator[tuple[str, list[Path]] | Failure]:
    """Group DICOM files into series from their headers; yields ``(series_key, files)`` or ``Failure``.

    ``limits`` is accepted for symmetry with the readers; grouping reads no pixels.
    """
    by_uid: dict[str, dict[str, list[Path]]] = {}
    for path in map(Path, paths):
        entry = _group_entry(path)
        if isinstance(entry, Failure):
            yield entry
            continue
        uid, sub_key = entry
        by_uid.setdefault(uid, {}).setdefault(sub_key, []).append(path)
    for uid, subgroups in by_uid.items():
        for sub_key, files in subgroups.items():
            key = uid if len(subgroups) == 1 and not sub_key.startswith("/") else f"{uid}{_sep(sub_key)}{sub_key}"
            log.debug("series %s: %d files", key, len(files))
            yield key, sorted(files)


def read_dicom_series(files: Sequence[Path], limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[Case | Failure]:
    """Read one group from ``group_dicom_series`` into Cases (a volume, a video, or 2D images) or Failures."""
    roles: dict[str, list[Item]] = {"mosaic": [], "slice": [], "single": [], "no_position": []}
    for path in map(Path, files):
        try:
            header = read_deferred(path)
            reason = not_image_reason(header)
            role = _role(header)
        except ReadError as exc:
            reason = str(exc)
        except Exception as exc:  # values pydicom cannot convert
            reason = f"unreadable DICOM header ({one_line(exc)})"
        if reason:
            yield Failure(path, reason)
        else:
            roles[role].append((path, header))
    mosaics, slices, singles = roles["mosaic"], roles["slice"], roles["single"]
    if mosaics:
        yield _attempt([p for p, _ in mosaics], volume_from_mosaics, mosaics, limits)
    if len(slices) >= 2 and _distinct_positions(slices):
        for path, _ in roles["no_position"]:  # a NaN position on a few slices must not split the series
            yield Failure(path, "slice position is not a number; left out of its series' volume")
        while True:  # a slice that cannot be decoded (truncated, wrong Rows) is left out, the rest is a volume
            dropped: list[Failure] = []
            case = _attempt([p for p, _ in slices], volume_from_slices, slices, limits, dropped)
            yield from dropped
            bad = {f.path for f in dropped}
            slices = [item for item in slices if item[0] not in bad]
            if not dropped or isinstance(case, Case) or len(slices) < 2 or not _distinct_positions(slices):
                break
        if isinstance(case, Case) or not dropped:
            yield case
        else:
            singles = slices + singles
    else:
        singles = slices + roles["no_position"] + singles
    for path, header in singles:
        yield _attempt([path], case_from_file, path, header, limits)


def dicomdir_referenced_files(path: Path, missing: list[Path] | None = None) -> list[Path]:
    """Existing files that a DICOMDIR references (names matched case-insensitively where needed); references
    to files that do not exist are appended to ``missing``.

    Raises ``ReadError`` when the file cannot be read or is not a DICOMDIR; a truncated DICOMDIR yields the
    records that could be read.
    """
    path = Path(path)
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as exc:
        raise ReadError(f"unreadable DICOMDIR ({one_line(exc)})") from exc
    if not is_dicomdir(ds):
        raise ReadError("not a DICOMDIR (no directory records)")
    root = path.parent
    found: list[Path] = []
    for record in ds.get("DirectoryRecordSequence") or []:
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [str(file_id)] if isinstance(file_id, str) else [str(p) for p in file_id]
        resolved = _resolve_case_insensitive(root, parts)
        if resolved is None:
            log.info("%s references a missing file %s", path, "/".join(parts))
            if missing is not None:
                missing.append(root.joinpath(*parts))
        elif resolved not in found:
            found.append(resolved)
    return found


def _maybe_dicom_name(path: Path) -> bool:
    suffix = path.suffix.lower()
    return suffix in _DICOM_SUFFIXES or not suffix.strip(".").isalpha()  # MR.1.3.12.2 has suffix ".2"


def _group_entry(path: Path) -> tuple[str, str] | Failure:
    """(SeriesInstanceUID, sub-key) of one file, or why it is not part of any series."""
    if not looks_like_dicom(path):
        return Failure(path, "not a DICOM file")
    try:
        ds = read_header(path, GROUPING_TAGS)
        reason = not_image_reason(ds)
        return Failure(path, reason) if reason else _series_key(ds, path)
    except ReadError as exc:
        return Failure(path, str(exc))
    except Exception as exc:  # values pydicom cannot convert
        return Failure(path, f"unreadable DICOM header ({one_line(exc)})")


def _role(ds: Dataset) -> str:
    """'mosaic', 'slice' (single frame with usable position + orientation) or 'single' (read on its own)."""
    if is_mosaic(ds):
        return "mosaic"
    if not _is_stackable(ds):
        return "single"
    try:
        orientation = [float(v) for v in ds.ImageOrientationPatient]
        position = [float(v) for v in ds.ImagePositionPatient]
        slice_normal(np.asarray(orientation))
    except (TypeError, ValueError):
        return "single"
    return "slice" if np.all(np.isfinite(orientation + position)) else "no_position"


def _series_key(ds: Dataset, path: Path) -> tuple[str, str]:
    """(SeriesInstanceUID, sub-key): geometry for stackable slices, '/SOPInstanceUID' for standalone images."""
    uid = str(ds.get("SeriesInstanceUID", "") or "") or f"no-series-uid:{path.parent}"
    if is_mosaic(ds) or _is_stackable(ds):
        orientation = ",".join(f"{float(v):.3f}" for v in ds.ImageOrientationPatient) if not is_mosaic(ds) else "mosaic"
        return uid, f"{ds.get('Rows')}x{ds.get('Columns')}@{orientation}"
    sop = str(ds.get("SOPInstanceUID", "") or "") or path.name
    return uid, f"/{sop}"


def _sep(sub_key: str) -> str:
    return "" if sub_key.startswith("/") else "|"


def _is_stackable(ds: Dataset) -> bool:
    """A single-frame image with slice position and orientation (part of a stack)."""
    return number_of_frames(ds) == 1 and has_slice_geometry(ds)


def _distinct_positions(items: Sequence[Item]) -> bool:
    """True when the slices lie at more than one position along their plane normal."""
    normal = slice_normal(np.asarray([float(v) for v in items[0][1].ImageOrientationPatient]))
    distances = np.asarray([[float(v) for v in ds.ImagePositionPatient] for _, ds in items]) @ normal
    return float(np.ptp(distances)) > POSITION_TOLERANCE_MM


def _attempt(paths: Sequence[Path], build: Callable[..., Case], *args: object) -> Case | Failure:
    """``build(*args)``; a ``ReadError`` or any decoder exception becomes a one-line ``Failure`` for ``paths``."""
    try:
        return build(*args)
    except ReadError as exc:
        reason = str(exc)
    except MemoryError:
        reason = "out of memory while decoding"
    except Exception as exc:  # a broken file must never stop the run
        reason = one_line(exc)
    where = _group_path(paths)
    log.info("%s: %s", where, reason)  # recorded and reported as a failure by the caller
    return Failure(where, reason)


def _group_path(paths: Sequence[Path]) -> Path:
    """The path a failure of several files is recorded at: their folder (the common folder of a series spread
    over folders, so that every one of its files is accounted for by the failure)."""
    if len(paths) == 1:
        return paths[0]
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


def _resolve_case_insensitive(root: Path, parts: list[str]) -> Path | None:
    candidate = root.joinpath(*parts)
    if candidate.is_file():
        return candidate
    current = root
    for part in parts:
        try:
            match = next((c for c in current.iterdir() if c.name.lower() == part.lower()), None)
        except OSError:
            return None
        if match is None:
            return None
        current = match
    return current if current.is_file() else None

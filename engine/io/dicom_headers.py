"""DICOM headers without pixels: which tags to read, what kind of object a file holds, its metadata.

Everything here works on a pydicom ``Dataset`` read with ``stop_before_pixels=True``; nothing decodes pixels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from engine.io.case import ReadError
from engine.io.fingerprint import file_fingerprint

# Tags read when grouping files into series (``specific_tags``): identity, geometry, size.
GROUPING_TAGS: list[str] = [
    "SOPClassUID",
    "SOPInstanceUID",
    "Modality",
    "SeriesInstanceUID",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "ImageType",
]

# Metadata copied into ``Case.metadata`` (as strings) when present.
METADATA_TAGS: tuple[str, ...] = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "StudyDate",
    "SeriesDate",
    "StudyDescription",
    "SeriesDescription",
    "SeriesNumber",
    "ProtocolName",
    "BodyPartExamined",
    "Manufacturer",
    "ManufacturerModelName",
    "InstitutionName",
    "Modality",
    "PhotometricInterpretation",
)

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage

# SOP class name fragments of objects that hold no retrievable image (or pixels that are not an image).
_NON_IMAGE_WORDS = (
    "SR Storage",
    "Structured Report",
    "Presentation State",
    "Key Object Selection",
    "RT Structure Set",
    "RT Plan",
    "RT Ion Plan",
    "RT Dose",
    "RT Beams Treatment Record",
    "RT Treatment Summary",
    "Segmentation Storage",
    "Waveform",
    "Encapsulated",
    "Raw Data",
    "Spectroscopy",
    "Registration",
    "Surface",
    "Media Storage Directory",
    "Basic Text",
    "Measurement Report",
)

# DICOM modality codes folded into the catalog's codes.
_MODALITY_MAP = {"CR": "XR", "DX": "XR", "DR": "XR", "RG": "XR", "PX": "XR", "IO": "XR", "XR": "XR"}
# Multi-frame objects of these modalities without per-frame positions are stacks (volumes), others are cines.
STACK_MODALITIES = frozenset({"CT", "MR", "PT"})


DEFERRED_VALUE_BYTES = 64 * 1024  # values larger than this (pixel data) are read from disk only when used


def read_header(path: Path, specific_tags: Sequence[str] | None = None) -> Dataset:
    """The file's header without pixel data; raises ``ReadError`` with a one-line reason."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=specific_tags)
    except Exception as exc:  # pydicom raises many types for broken files
        raise ReadError(f"unreadable DICOM header ({one_line(exc)})") from exc


def read_deferred(path: Path) -> Dataset:
    """The whole dataset with large values (pixel data) deferred: parsed once, pixels loaded on first use."""
    try:
        return pydicom.dcmread(path, force=True, defer_size=DEFERRED_VALUE_BYTES)
    except Exception as exc:  # pydicom raises many types for broken files
        raise ReadError(f"unreadable DICOM header ({one_line(exc)})") from exc


def sop_class_name(ds: Dataset) -> str:
    """Readable SOP class of a dataset ('unknown' when absent)."""
    uid = ds.get("SOPClassUID") or getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPClassUID")
    if not uid:
        return "unknown SOP class"
    return UID(str(uid)).name


def is_dicomdir(ds: Dataset) -> bool:
    """True for a DICOMDIR (media directory) file."""
    meta_class = getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPClassUID")
    return str(meta_class or ds.get("SOPClassUID", "")) == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds


def not_image_reason(ds: Dataset) -> str | None:
    """``'skipped: not an image (<SOP class>)'`` for objects that hold no image, else None."""
    name = sop_class_name(ds)
    if is_dicomdir(ds):
        return "skipped: not an image (DICOMDIR)"
    if any(word.lower() in name.lower() for word in _NON_IMAGE_WORDS):
        return f"skipped: not an image ({name})"
    if not ds.get("Rows") or not ds.get("Columns"):
        return f"skipped: not an image ({name} without pixel data)"
    return None


def catalog_modality(ds: Dataset) -> str:
    """The catalog's modality code for a dataset: CR/DX -> XR, empty -> OT."""
    code = str(ds.get("Modality", "") or "").strip().upper()
    return _MODALITY_MAP.get(code, code or "OT")


def number_of_frames(ds: Dataset) -> int:
    """NumberOfFrames (1 when absent or unparsable)."""
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def is_mosaic(ds: Dataset) -> bool:
    """True for a Siemens mosaic (many slices tiled in one image)."""
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    return "MOSAIC" in image_type


def has_slice_geometry(ds: Dataset) -> bool:
    """True when the (single-frame) image carries ImagePositionPatient + ImageOrientationPatient."""
    return len(ds.get("ImagePositionPatient") or []) == 3 and len(ds.get("ImageOrientationPatient") or []) == 6


def metadata(ds: Dataset) -> dict[str, str]:
    """Identifiers, dates and descriptions as strings (absent tags omitted)."""
    out: dict[str, str] = {}
    for keyword in METADATA_TAGS:
        value = ds.get(keyword)
        if value is not None and str(value).strip():
            out[keyword] = str(value).strip()
    out["SOPClass"] = sop_class_name(ds)
    syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    if syntax:
        out["TransferSyntax"] = UID(str(syntax)).name
    return out


def fingerprint(paths: Sequence[Path]) -> str:
    """sha1 over the files' own fingerprints (size + first/last 64 KiB), sorted: names and order do not matter."""
    digests = sorted(file_fingerprint(path) for path in paths)
    return hashlib.sha1("".join(digests).encode()).hexdigest()


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line: 'Type: message'."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not text.startswith(type(exc).__name__):
        text = f"{type(exc).__name__}: {text}"
    return text[:limit]

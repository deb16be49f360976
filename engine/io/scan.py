"""The single entry point of ``engine.io``: any path (file or folder) -> ``Case`` objects or ``Failure``s.

Two steps, so callers can show progress and skip unchanged work between them:

1. ``discover`` walks the path (header/magic checks only, no pixels) and yields ``SourceUnit``s: one per
   NIfTI, video or image file, one per DICOM series (grouped by ``engine.io.dicom.group_dicom_series``).
2. ``read_unit`` decodes one unit into Cases; it never raises for bad data.

``read_path`` chains both.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.config import DEFAULT_LIMITS, ReadLimits
from engine.io.case import Case, Failure, ReadError
from engine.io.image import IMAGE_SUFFIXES, looks_like_image, read_image
from engine.io.nifti import is_nifti_name, read_nifti
from engine.io.video import VIDEO_SUFFIXES, read_video

try:  # the DICOM reader is optional at import time (it is developed in parallel)
    from engine.io import dicom as _dicom
except ImportError:  # pragma: no cover - only while engine.io.dicom is absent
    _dicom = None

log = logging.getLogger(__name__)

Reader = str  # "dicom" | "nifti" | "video" | "image"
READERS: tuple[str, ...] = ("dicom", "nifti", "video", "image")
DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic", ".ima"})
# Files skipped silently: text, metadata and other obvious non-images.
IGNORED_SUFFIXES = frozenset(
    {".txt", ".json", ".csv", ".tsv", ".md", ".rst", ".xml", ".html", ".htm", ".yaml", ".yml", ".ini", ".log",
     ".py", ".sh", ".bat", ".db", ".sqlite", ".lock", ".bvec", ".bval"}
)
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini", "license", "readme", "manifest"})


@dataclass(frozen=True)
class SourceUnit:
    """Files that make one reading job: one file, or the files of one DICOM series."""

    reader: str  # "dicom" | "nifti" | "video" | "image"
    files: tuple[Path, ...]
    key: str  # stable identity: the DICOM series key or the resolved file path


ProgressCallback = Callable[[int], None]


def dicom_available() -> bool:
    """True when the DICOM reader (``engine.io.dicom``) is installed."""
    return _dicom is not None


def _has_dicom_preamble(path: Path) -> bool:
    """The DICOM Part 10 magic ("DICM" at byte 128); used only while engine.io.dicom is absent."""
    try:
        with path.open("rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _looks_like_dicom(path: Path) -> bool:
    if _dicom is not None:
        return bool(_dicom.looks_like_dicom(path))
    return _has_dicom_preamble(path)


def _suffix(path: Path) -> str:
    """The lower-case extension, "" for none or a numeric one (``MR.1.3.12.2.1107.5...`` UID-like names)."""
    suffix = path.suffix.lower()
    return "" if suffix[1:].isdigit() else suffix


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def classify(path: Path) -> str | None:
    """Which reader handles ``path`` ("dicom", "nifti", "video", "image"), "dicomdir", "ignore", or None when
    the file type is unsupported. Looks at the extension, then at magic bytes."""
    name = path.name.lower()
    suffix = _suffix(path)
    if name == "dicomdir":
        return "dicomdir"
    if is_nifti_name(path):
        return "nifti"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    if suffix in IGNORED_SUFFIXES or name in IGNORED_NAMES or name.split(".")[0] in IGNORED_NAMES:
        return "ignore"
    if _looks_like_dicom(path):
        return "dicom"
    try:
        with path.open("rb") as f:
            head = f.read(32)
    except OSError:
        return None
    if looks_like_image(head):
        return "image"
    return None


def _walk(root: Path) -> Iterator[Path]:
    """Files under ``root`` (or ``root`` itself), sorted, hidden files and folders skipped, links not followed."""
    if root.is_file():
        yield root
        return
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
        for name in sorted(files):
            if not _is_hidden(name):
                yield Path(folder) / name


def _dicomdir_files(path: Path) -> list[Path] | Failure:
    if _dicom is None:
        return Failure(path, "DICOMDIR found but the DICOM reader is not available")
    try:
        return [Path(p) for p in _dicom.dicomdir_referenced_files(path)]
    except Exception as exc:  # noqa: BLE001 (a bad DICOMDIR must not stop the walk)
        return Failure(path, f"cannot read DICOMDIR ({_one_line(exc)})")


def discover(
    path: Path | str, limits: ReadLimits = DEFAULT_LIMITS, progress: ProgressCallback | None = None,
    skipped: Callable[[Path, str], None] | None = None,
) -> Iterator[SourceUnit | Failure]:
    """Walk a file or folder recursively and yield the units to read (no pixels decoded).

    Non-DICOM files are yielded as they are found; DICOM files (including those a DICOMDIR references) are
    grouped into series at the end. ``progress`` is called with the number of files examined since its last
    call (tqdm ``update`` style). Unsupported files become ``Failure("unsupported file type")``; files that are
    not medical images by their name (text, tables, scripts, ``IGNORED_SUFFIXES``) are passed to ``skipped``
    with the reason, so a run can say what it left out.
    """
    root = Path(path)
    if not root.exists():
        yield Failure(root, "no such file or folder")
        return
    dicom_files: dict[Path, Path] = {}  # resolved -> as found (an ordered set, a DICOMDIR may repeat files)
    pending = 0
    for file in _walk(root):
        pending += 1
        if progress is not None and pending >= 64:
            progress(pending)
            pending = 0
        try:
            kind = classify(file)
        except Exception as exc:  # noqa: BLE001 (unreadable file, permission, odd magic: that file fails)
            yield Failure(file, f"cannot read file ({_one_line(exc)})")
            continue
        if kind == "ignore":
            if skipped is not None:
                skipped(file, f"not a medical image ({_suffix(file) or file.name})")
            continue
        if kind is None:
            yield Failure(file, "unsupported file type")
        elif kind == "dicomdir":
            referenced = _dicomdir_files(file)
            if isinstance(referenced, Failure):
                yield referenced
            else:
                dicom_files.update((f.resolve(), f) for f in referenced)
        elif kind == "dicom":
            dicom_files.setdefault(file.resolve(), file)
        else:
            yield SourceUnit(kind, (file,), str(file.resolve()))
    if progress is not None and pending:
        progress(pending)
    if dicom_files:
        yield from _dicom_units(list(dicom_files.values()), limits)


def _dicom_units(files: list[Path], limits: ReadLimits) -> Iterator[SourceUnit | Failure]:
    if _dicom is None:
        folders: dict[Path, int] = {}
        for file in files:
            folders[file.parent] = folders.get(file.parent, 0) + 1
        for folder, count in folders.items():
            yield Failure(folder, f"{count} DICOM file(s), but the DICOM reader is not available")
        return
    try:
        for item in _dicom.group_dicom_series(files, limits):
            if isinstance(item, Failure):
                yield item
            else:
                key, series_files = item
                yield SourceUnit("dicom", tuple(Path(p) for p in series_files), str(key))
    except Exception as exc:  # noqa: BLE001 (grouping must not end the walk silently)
        log.exception("grouping DICOM files failed")
        yield Failure(_common_folder(files), f"cannot group DICOM files ({_one_line(exc)})")


def _common_folder(files: list[Path]) -> Path:
    return Path(os.path.commonpath([str(f.parent) for f in files])) if files else Path(".")


_FILE_READERS: dict[str, Callable[[Path, ReadLimits], Case]] = {
    "nifti": read_nifti,
    "video": read_video,
    "image": read_image,
}


def read_unit(unit: SourceUnit, limits: ReadLimits = DEFAULT_LIMITS) -> list[Case | Failure]:
    """Decode one unit. Never raises for bad data: every problem becomes ``Failure(path, one-line reason)``."""
    where = unit.files[0] if len(unit.files) == 1 else _common_folder(list(unit.files))
    try:
        if unit.reader == "dicom":
            if _dicom is None:
                return [Failure(where, "DICOM reader not available")]
            return list(_dicom.read_dicom_series(list(unit.files), limits))
        reader = _FILE_READERS.get(unit.reader)
        if reader is None:
            return [Failure(where, f"no reader named {unit.reader!r}")]
        return [reader(unit.files[0], limits)]
    except ReadError as exc:
        return [Failure(where, " ".join(str(exc).split()) or "unreadable")]
    except MemoryError:
        return [Failure(where, "out of memory while decoding")]
    except Exception as exc:  # noqa: BLE001 (any decoder bug on bad data is a failure of that file, not a crash)
        log.debug("reading %s failed", where, exc_info=True)
        return [Failure(where, _one_line(exc))]


def read_path(path: Path | str, limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[Case | Failure]:
    """Every case under ``path`` (a file or a folder), and a Failure for everything that could not be read."""
    for unit in discover(path, limits):
        if isinstance(unit, Failure):
            yield unit
        else:
            yield from read_unit(unit, limits)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__

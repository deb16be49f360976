"""The single entry point of ``engine.io``: any path (file or folder) -> ``Case`` objects or ``Failure``s.

Two steps, so callers can show progress and skip unchanged work between them:

1. ``discover`` walks the path (header/magic checks only, no pixels) and yields ``SourceUnit``s: one per
   NIfTI, video or image file, one per DICOM series (grouped by ``engine.io.dicom.group_dicom_series``).
2. ``read_unit`` decodes one unit into Cases; it never raises for bad data.

``read_path`` chains both.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.config import DEFAULT_LIMITS, ReadLimits
from engine.io.case import Case, Failure, ReadError, display_path
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


def _walk(root: Path, exclude: frozenset[tuple[int, int]] = frozenset()) -> Iterator[Path | Failure]:
    """Files under ``root`` (or ``root`` itself), sorted, hidden files and folders skipped, links to folders not
    followed, folders whose (device, inode) is in ``exclude`` (the library being written) skipped; a folder that
    cannot be listed is a Failure."""
    if not root.is_dir():
        yield root
        return
    errors: list[OSError] = []
    for folder, dirs, files in os.walk(root, onerror=errors.append):
        while errors:
            error = errors.pop()
            yield Failure(Path(error.filename or folder), f"cannot list folder ({error.strerror or error})")
        dirs[:] = sorted(d for d in dirs if not _is_hidden(d)
                         and not (exclude and _identity(os.path.join(folder, d)) in exclude))
        for name in sorted(files):
            if not _is_hidden(name):
                yield Path(folder) / name
    for error in errors:
        yield Failure(Path(error.filename or root), f"cannot list folder ({error.strerror or error})")


def _identity(path: str | Path) -> tuple[int, int] | None:
    """(device, inode) of a folder, None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def not_regular_reason(path: Path) -> str | None:
    """Why ``path`` is not a regular file that can be read without blocking (links followed), or None.

    Named pipes, devices (a link to ``/dev/zero``), sockets, link loops and dangling links are refused here,
    before anything opens them: opening a FIFO blocks forever and a device never ends."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop; skipped"
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return "dangling symbolic link; skipped"
        return f"cannot read file ({exc.strerror or exc})"
    if stat.S_ISREG(st.st_mode):
        return None
    kind = ("named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "device" if stat.S_ISCHR(st.st_mode)
            or stat.S_ISBLK(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "special file")
    return f"not a regular file ({kind}); skipped"


def _dicomdir_files(path: Path) -> tuple[list[Path], list[Path]] | Failure:
    """(files a DICOMDIR references that exist, references that do not), or why it cannot be read."""
    if _dicom is None:
        return Failure(path, "DICOMDIR found but the DICOM reader is not available")
    try:
        missing: list[Path] = []
        return [Path(p) for p in _dicom.dicomdir_referenced_files(path, missing)], missing
    except Exception as exc:  # noqa: BLE001 (a bad DICOMDIR must not stop the walk)
        return Failure(path, f"cannot read DICOMDIR ({_one_line(exc)})")


def discover(
    path: Path | str, limits: ReadLimits = DEFAULT_LIMITS, progress: ProgressCallback | None = None,
    skipped: Callable[[Path, str], None] | None = None,
    exclude: Sequence[Path] = (),
) -> Iterator[SourceUnit | Failure]:
    """Walk a file or folder recursively and yield the units to read (no pixels decoded).

    Non-DICOM files are yielded as they are found; DICOM files (including those a DICOMDIR references) are
    grouped into series at the end. ``progress`` is called with the number of files examined since its last
    call (tqdm ``update`` style). Unsupported files become ``Failure("unsupported file type")``; files that are
    not medical images by their name (text, tables, scripts, ``IGNORED_SUFFIXES``) are passed to ``skipped``
    with the reason, so a run can say what it left out; special files (FIFOs, devices,
    sockets), link loops and dangling links become failures without being opened. Folders in ``exclude`` (the
    library being written into) are skipped.
    """
    root = Path(path)
    if not os.path.lexists(root):
        yield Failure(root, "no such file or folder")
        return
    excluded_ids = frozenset(i for i in map(_identity, exclude) if i is not None)
    if _identity(root) in excluded_ids:
        return
    dicom_files: dict[Path, Path] = {}  # resolved -> as found (an ordered set, a DICOMDIR may repeat files)
    pending = 0
    for file in _walk(root, excluded_ids):
        if isinstance(file, Failure):
            yield file
            continue
        pending += 1
        if progress is not None and pending >= 64:
            progress(pending)
            pending = 0
        reason = not_regular_reason(file)
        if reason is not None:
            yield Failure(file, reason)
            continue
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
                continue
            files, missing = referenced
            if not files and not missing:
                yield Failure(file, "DICOMDIR references no files")
            if missing:
                yield Failure(file, f"DICOMDIR references {len(missing)} missing or unreadable file(s), e.g. "
                                    f"{display_path(missing[0])}")
            for referenced_file in files:
                if not_regular_reason(referenced_file) is None:
                    dicom_files.setdefault(referenced_file.resolve(), referenced_file)
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
    return list(iter_unit(unit, limits))


def iter_unit(unit: SourceUnit, limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[Case | Failure]:
    """``read_unit`` one case at a time (a DICOM unit of many images never holds them all in memory)."""
    where = unit.files[0] if len(unit.files) == 1 else _common_folder(list(unit.files))
    try:
        if unit.reader == "dicom":
            if _dicom is None:
                yield Failure(where, "DICOM reader not available")
                return
            items: Iterator[Case | Failure] | list[Case] = _dicom.read_dicom_series(list(unit.files), limits)
        else:
            reader = _FILE_READERS.get(unit.reader)
            if reader is None:
                yield Failure(where, f"no reader named {unit.reader!r}")
                return
            items = [reader(unit.files[0], limits)]
        for item in items:
            reason = None if isinstance(item, Failure) else degenerate_reason(item, limits)
            yield Failure(item.path, reason) if reason else item
    except ReadError as exc:
        yield Failure(where, " ".join(str(exc).split()) or "unreadable")
    except MemoryError:
        yield Failure(where, "out of memory while decoding")
    except Exception as exc:  # noqa: BLE001 (any decoder bug on bad data is a failure of that file, not a crash)
        log.debug("reading %s failed", display_path(where), exc_info=True)
        yield Failure(where, _one_line(exc))


def degenerate_reason(case: Case, limits: ReadLimits = DEFAULT_LIMITS) -> str | None:
    """Why a decoded case is not worth indexing (a side under ``min_side`` pixels, a one-frame video), or None."""
    spatial = case.shape[-3:-1] if case.is_color else case.shape[-2:]
    if len(spatial) < 2 or min(spatial) < limits.min_side:
        return f"refused: degenerate {case.kind} of shape {case.shape} (a side under {limits.min_side} pixels)"
    frames = case.frame_count if case.frame_count is not None else case.shape[0]  # in the source, not sampled
    if case.kind == "video" and frames < limits.min_video_frames:
        return f"refused: video with {frames} decodable frame(s) (truncated?)"
    return None


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

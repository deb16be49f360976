"""The per-library inbox: received instances, one file each, ``<library>/inbox/<study>/<series>/<sop>.dcm``.

Each instance is written to a hidden temporary file and renamed into place (readers never see half a file);
an instance already there with the same bytes is not rewritten, so a study sent twice changes nothing. A series
whose sender dropped the association holds a hidden ``.incomplete`` marker until a later association completes
it; the indexer skips hidden files, so the marker is never read as an image.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

log = logging.getLogger(__name__)

INBOX_FOLDER = "inbox"
INCOMPLETE_MARKER = ".incomplete"


class InstanceRefused(ValueError):
    """A received instance cannot be stored (message: the reason, one line); ``unparseable``: not even its header
    could be read (else it lacks what it must have)."""

    def __init__(self, reason: str, unparseable: bool = False) -> None:
        super().__init__(reason)
        self.unparseable = unparseable


@dataclass(frozen=True)
class StoredInstance:
    """Where a received instance went; ``new`` is False when identical bytes were already stored."""

    path: Path
    study_uid: str
    series_uid: str
    sop_uid: str
    new: bool

    @property
    def series_dir(self) -> Path:
        return self.path.parent


class Inbox:
    """The inbox folder of one library."""

    def __init__(self, library_dir: Path) -> None:
        self.root = Path(library_dir) / INBOX_FOLDER

    def store(self, encoded: bytes) -> StoredInstance:
        """Check and write one DICOM Part 10 file (preamble, meta, dataset); ``InstanceRefused`` with the reason."""
        study, series, sop = instance_uids(encoded)
        folder = self.root / study / series
        path = folder / f"{sop}.dcm"
        if path.is_file() and path.stat().st_size == len(encoded) and path.read_bytes() == encoded:
            return StoredInstance(path, study, series, sop, new=False)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = folder / f".{sop}.{os.getpid()}.part"
        try:
            with tmp.open("wb") as f:
                f.write(encoded)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return StoredInstance(path, study, series, sop, new=True)

    def series_dirs(self) -> Iterator[Path]:
        """Every series folder in the inbox."""
        if self.root.is_dir():
            for study in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
                yield from sorted(p for p in study.iterdir() if p.is_dir() and not p.name.startswith("."))

    def study_dir(self, study_uid: str) -> Path:
        return self.root / study_uid

    @staticmethod
    def mark_incomplete(series_dir: Path) -> None:
        """Hold ``series_dir`` back from indexing (its sender dropped the association)."""
        (series_dir / INCOMPLETE_MARKER).touch()

    @staticmethod
    def mark_complete(series_dir: Path) -> None:
        (series_dir / INCOMPLETE_MARKER).unlink(missing_ok=True)

    @staticmethod
    def is_incomplete(series_dir: Path) -> bool:
        return (series_dir / INCOMPLETE_MARKER).exists()


def instance_uids(encoded: bytes) -> tuple[str, str, str]:
    """(study, series, SOP instance) UIDs of an encoded Part 10 file; ``InstanceRefused`` when one is missing."""
    try:
        ds = pydicom.dcmread(io.BytesIO(encoded), stop_before_pixels=True)
    except (InvalidDicomError, EOFError, ValueError, OSError, KeyError, TypeError) as exc:
        reason = f"cannot parse the dataset ({type(exc).__name__}: {exc})"[:200]
        raise InstanceRefused(reason, unparseable=True) from exc
    uids = []
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        value = str(ds.get(keyword, "") or "").strip()
        if not value:
            raise InstanceRefused(f"no {keyword}")
        if not UID(value).is_valid:
            raise InstanceRefused(f"{keyword} {value[:70]!r} is not a valid UID")
        uids.append(value)
    return uids[0], uids[1], uids[2]

"""The data manifest: one row per case (file or DICOM series folder) with its modality, dataset, label and split.

A manifest is a CSV with the columns ``path,modality,dataset,label,split,patient,source,license``; ``path`` is
relative to the CSV's folder (or absolute). The ``modality`` column is the truth for training filters and
evaluation (readers report "OT" for NIfTI, PNG and MP4 files). A plain folder of images can stand in for a
manifest: every file becomes a row whose label is its parent folder's name (``rows_from_folder``).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = ("path", "modality", "dataset", "label", "split", "patient", "source", "license")
REQUIRED_COLUMNS: tuple[str, ...] = ("path", "modality", "dataset", "label", "split")


class ManifestError(ValueError):
    """A manifest that cannot be used (missing file or column); the message names the file and the reason."""


@dataclass(frozen=True)
class ManifestRow:
    """One case of a manifest."""

    path: Path  # absolute: a file, or a folder holding one DICOM series
    modality: str  # xray, ultrasound, ct, mri, ... (truth for evaluation)
    dataset: str
    label: str
    split: str  # train, val, test, ...
    patient: str = ""
    source: str = ""
    license: str = ""

    @property
    def label_key(self) -> str:
        """Label made unique across datasets ("dataset/label"): labels are only comparable within a dataset."""
        return f"{self.dataset}/{self.label}"


def load_manifest(
    csv_path: str | Path,
    splits: Iterable[str] | str | None = None,
    exclude_modalities: Iterable[str] = (),
    include_modalities: Iterable[str] | None = None,
) -> list[ManifestRow]:
    """Rows of a manifest CSV, filtered by split and modality, in file order; paths made absolute.

    ``splits``: one split name or several (None = all). ``include_modalities``: keep only these (None = all);
    ``exclude_modalities``: then drop these (e.g. ``("mri",)`` for training).
    """
    csv_path = Path(csv_path).expanduser().resolve()
    if not csv_path.is_file():
        raise ManifestError(f"{csv_path}: manifest not found")
    wanted_splits = {splits} if isinstance(splits, str) else (set(splits) if splits is not None else None)
    included = set(include_modalities) if include_modalities is not None else None
    excluded = set(exclude_modalities)
    rows: list[ManifestRow] = []
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{csv_path}: missing column(s) {', '.join(missing)}")
        for record in reader:
            row = _row_from_record(record, csv_path.parent)
            if wanted_splits is not None and row.split not in wanted_splits:
                continue
            if included is not None and row.modality not in included:
                continue
            if row.modality in excluded:
                continue
            rows.append(row)
    logger.info("%s: %d rows (splits=%s)", csv_path, len(rows), sorted(wanted_splits) if wanted_splits else "all")
    return rows


def _row_from_record(record: dict[str, str], base: Path) -> ManifestRow:
    path = Path(record["path"])
    if not path.is_absolute():
        path = base / path
    return ManifestRow(
        path=path,
        modality=record["modality"].strip(),
        dataset=record["dataset"].strip(),
        label=record["label"].strip(),
        split=record["split"].strip(),
        patient=(record.get("patient") or "").strip(),
        source=(record.get("source") or "").strip(),
        license=(record.get("license") or "").strip(),
    )


def rows_from_folder(folder: str | Path, split: str = "train") -> list[ManifestRow]:
    """Every file under ``folder`` as a row: modality "unknown", label = parent folder name, dataset = folder name.

    Hidden files are skipped. A folder of DICOM files becomes one row per file here (the reader groups series
    only when given the folder), which is what a plain image folder needs.
    """
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise ManifestError(f"{folder}: not a folder")
    rows = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        rows.append(
            ManifestRow(path=path, modality="unknown", dataset=folder.name, label=path.parent.name, split=split)
        )
    logger.info("%s: %d files", folder, len(rows))
    return rows


def write_manifest(rows: Iterable[ManifestRow], csv_path: str | Path) -> Path:
    """Write rows as a manifest CSV with paths relative to its folder where possible (tests, subsets)."""
    csv_path = Path(csv_path)
    base = csv_path.parent.resolve()
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in rows:
            try:
                path = str(row.path.relative_to(base))
            except ValueError:
                path = str(row.path)
            writer.writerow(
                [path, row.modality, row.dataset, row.label, row.split, row.patient, row.source, row.license]
            )
    return csv_path

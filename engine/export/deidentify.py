"""De-identified copies of a library's cases (``m3ret export``), following the DICOM PS3.15 Basic Application
Level Confidentiality Profile.

DICOM files go through ``dicognito`` (a maintained de-identifier): person names, ids (patient, accession, study,
station, ...), addresses and institutions replaced by dummies, every date / time shifted by one random offset,
every UID remapped. One ``Anonymizer`` (with a random seed, so nothing can be reversed) serves the whole export,
so a series keeps one Series/Study/Frame-of-Reference UID and its slices keep their order and geometry, and the
cases of one patient stay one (dummy) patient. On top of dicognito, as the profile asks: private tags are removed,
and the attributes the profile removes (``X``) or empties (``Z``) that dicognito keeps are removed
(``PROFILE_REMOVED``: free-text descriptions and comments, birth date, age, size, weight, ...). Pixel data is
untouched: a text burned into the pixels (``BurnedInAnnotation`` = YES, common in ultrasound) is *not* removed, and
the export's manifest lists such files.

NIfTI headers lose their free-text fields and extensions; images are re-encoded (no PNG text chunks or EXIF);
videos are re-encoded frame by frame (no container metadata; lossy). Every exported file is named by the case's
position in the export (``case001/00001.dcm``, ``case002/volume.nii.gz``), never by its source name.
``keep_identifiers=True`` copies the source files unchanged, with their names (an explicit choice).
"""

from __future__ import annotations

import logging
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from engine.catalog import CaseRecord

log = logging.getLogger(__name__)

# PS3.15 Table E.1-1 attributes (basic profile action X, Z or X/Z) that dicognito leaves in place.
PROFILE_REMOVED: tuple[str, ...] = (
    "AccessionNumber",  # dicognito replaces it with a dummy; removed as well
    "AcquisitionComments", "AdditionalPatientHistory", "AdmittingDiagnosesDescription", "Allergies",
    "ClinicalTrialSponsorName", "ContentCreatorName", "CountryOfResidence", "DerivationDescription",
    "DeviceSerialNumber", "EthnicGroup", "FrameComments", "ImageComments", "IssuerOfPatientID", "MedicalAlerts",
    "OtherPatientIDsSequence", "PatientAge", "PatientBirthDate", "PatientBirthTime", "PatientComments",
    "PatientSize", "PatientState", "PatientWeight", "PerformedProcedureStepDescription", "ProtocolName",
    "ReasonForTheRequestedProcedure", "ReferencedPatientSequence", "ReferencedStudySequence", "RegionOfResidence",
    "RequestAttributesSequence", "RequestedProcedureDescription", "SeriesDescription", "SmokingStatus",
    "StudyComments", "StudyDescription", "TextComments", "VisitComments",
)
DEIDENTIFICATION_METHOD = "m3ret: PS3.15 basic profile, private tags removed"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
NIFTI_TEXT_FIELDS = ("descrip", "aux_file", "db_name", "intent_name")


class ExportError(Exception):
    """A case cannot be exported (message names the file and the reason)."""


@dataclass
class ExportedCase:
    """One exported case: its id in the library, its folder in the export and the files written."""

    case_id: int
    folder: str  # "case001"
    files: list[str] = field(default_factory=list)  # relative to the export folder
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"case_id": self.case_id, "folder": self.folder, "files": self.files, "warnings": self.warnings}


class Deidentifier:
    """One export's de-identifier: the same random date offset and UID mapping for every file it sees."""

    def __init__(self, seed: str | None = None) -> None:
        from dicognito.anonymizer import Anonymizer  # lazy: only exports need it

        self._anonymizer = Anonymizer(seed=seed or secrets.token_hex(16))

    def deidentify_dataset(self, ds: pydicom.Dataset) -> None:
        """De-identify one dataset in place (module docstring)."""
        ds.remove_private_tags()
        self._anonymizer.anonymize(ds)
        for keyword in PROFILE_REMOVED:
            if keyword in ds:
                delattr(ds, keyword)
        ds.walk(_strip_nested)
        methods = ds.get("DeidentificationMethod", [])
        methods = [methods] if isinstance(methods, str) else list(methods)
        ds.DeidentificationMethod = [*methods, DEIDENTIFICATION_METHOD]

    def export_dicom(self, source: Path, target: Path) -> list[str]:
        """Write a de-identified copy of one DICOM file; returns warnings (burned-in annotation)."""
        try:
            ds = pydicom.dcmread(source)
        except (InvalidDicomError, OSError, ValueError) as exc:
            raise ExportError(f"{source}: cannot read DICOM ({exc})") from exc
        warnings = []
        if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
            warnings.append(f"{target.name}: BurnedInAnnotation=YES, text in the pixels is not removed")
        self.deidentify_dataset(ds)
        ds.save_as(target, enforce_file_format=True)
        return warnings


def _strip_nested(dataset: pydicom.Dataset, element: pydicom.DataElement) -> None:
    """Inside sequences too: the profile's removed attributes go (dicognito already walked them)."""
    if element.keyword in PROFILE_REMOVED and element.tag in dataset:
        del dataset[element.tag]


def export_case(record: CaseRecord, out_dir: Path, folder: str, deidentifier: Deidentifier | None) -> ExportedCase:
    """Export one catalogued case's source files into ``out_dir/folder``; ``deidentifier=None`` keeps identifiers."""
    sources = [Path(p) for p in record.source_paths]
    missing = [p for p in sources if not p.is_file()]
    if not sources or missing:
        raise ExportError(f"{missing[0] if missing else record.path}: source file missing (case {record.id})")
    target_dir = out_dir / folder
    target_dir.mkdir(parents=True, exist_ok=True)
    exported = ExportedCase(case_id=record.id, folder=folder)
    for n, source in enumerate(sources, start=1):
        if deidentifier is None:
            target = target_dir / source.name
            shutil.copy2(source, target)
        else:
            target = _deidentified_copy(source, target_dir, n, record, deidentifier, exported.warnings)
        exported.files.append(f"{folder}/{target.name}")
    return exported


def _deidentified_copy(source: Path, target_dir: Path, n: int, record: CaseRecord, deidentifier: Deidentifier,
                       warnings: list[str]) -> Path:
    name = source.name.lower()
    if record.reader.startswith("dicom") or _is_dicom(source):
        target = target_dir / f"{n:05d}.dcm"
        warnings.extend(deidentifier.export_dicom(source, target))
    elif name.endswith((".nii", ".nii.gz")):
        target = target_dir / ("volume.nii.gz" if name.endswith(".gz") else "volume.nii")
        _export_nifti(source, target)
    elif name.endswith(VIDEO_SUFFIXES):
        target = target_dir / "video.mp4"
        _export_video(source, target)
    else:
        target = target_dir / "image.png"
        _export_image(source, target)
    return target


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _export_nifti(source: Path, target: Path) -> None:
    import nibabel as nib

    try:
        image = nib.load(str(source))
        header = image.header.copy()
        for name in NIFTI_TEXT_FIELDS:
            if name in header:
                header[name] = b""
        header.extensions.clear()
        clean = nib.Nifti1Image(np.asanyarray(image.dataobj), image.affine, header)
        nib.save(clean, str(target))
    except Exception as exc:  # nibabel raises many kinds for a damaged file
        raise ExportError(f"{source}: cannot export NIfTI ({exc})") from exc


def _export_image(source: Path, target: Path) -> None:
    pixels = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
    if pixels is None or not cv2.imwrite(str(target), pixels):
        raise ExportError(f"{source}: cannot re-encode image")


def _export_video(source: Path, target: Path) -> None:
    capture = cv2.VideoCapture(str(source))
    writer = None
    try:
        if not capture.isOpened():
            raise ExportError(f"{source}: cannot open video")
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        while True:
            ok, frame = capture.read()  # H W 3 BGR
            if not ok:
                break
            if writer is None:
                writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                         (frame.shape[1], frame.shape[0]))
            writer.write(frame)
        if writer is None:
            raise ExportError(f"{source}: no frame could be decoded")
    finally:
        capture.release()
        if writer is not None:
            writer.release()


def export_cases(records: list[CaseRecord], out_dir: Path, keep_identifiers: bool = False,
                 seed: str | None = None) -> list[ExportedCase]:
    """Export cases into ``out_dir/caseNNN/``, de-identified unless ``keep_identifiers`` (one de-identifier for
    all, so UIDs and dates stay consistent across the export)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    deidentifier = None if keep_identifiers else Deidentifier(seed)
    width = max(3, len(str(len(records))))
    return [export_case(record, out_dir, f"case{n:0{width}d}", deidentifier)
            for n, record in enumerate(records, start=1)]


__all__ = ["Deidentifier", "ExportError", "ExportedCase", "PROFILE_REMOVED", "export_case", "export_cases"]

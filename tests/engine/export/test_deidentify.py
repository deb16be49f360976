"""engine.export.deidentify: patient data planted in real DICOM (shared CT series, pydicom's files), NIfTI and PNG
is nowhere in the export; the exported series still reads as one volume with the same geometry and pixels."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pydicom
import pytest

from engine.export.deidentify import export_cases
from engine.indexer import index_paths
from engine.io.case import Case
from engine.io.scan import read_path
from engine.library import Library
from tests.engine.io.test_dicom import pydicom_file

PLANTED = {
    "PatientName": "Plantedsurname^Plantedgiven",
    "PatientID": "PLANTID4711",
    "PatientBirthDate": "19610824",
    "AccessionNumber": "ACC998877",
    "InstitutionName": "Plantedtown General Hospital",
    "StudyDescription": "Plantedsurname follow-up",
    "ReferringPhysicianName": "Drplanted^Referrer",
    "StudyDate": "20190312",
}
PRIVATE_VALUE = "PLANTEDPRIVATEVALUE"
FILE_TAG = "Plantedsurname_PLANTID4711"  # planted into every file and folder name
NEEDLES = [v.split("^")[0] for v in PLANTED.values()] + [PRIVATE_VALUE, "PLANTID4711", "Plantedgiven", "Plantedtown"]
PYDICOM_FILES = ("CT_small.dcm", "MR_small.dcm", "US1_J2KR.dcm", "emri_small.dcm")


def plant(ds: pydicom.Dataset) -> None:
    """Patient data in the usual places, and in a private block."""
    for keyword, value in PLANTED.items():
        setattr(ds, keyword, value)
    block = ds.private_block(0x0011, "PLANTED CREATOR", create=True)
    block.add_new(0x01, "LO", PRIVATE_VALUE)


def planted_copy(source: Path, target: Path) -> Path:
    ds = pydicom.dcmread(source)
    plant(ds)
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)
    return target


def add_png_text(path: Path, key: str, text: str) -> None:
    """Insert a tEXt chunk before IEND (PNG metadata that could carry a name)."""
    data = path.read_bytes()
    chunk_data = key.encode() + b"\x00" + text.encode()
    chunk = struct.pack(">I", len(chunk_data)) + b"tEXt" + chunk_data
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + chunk_data) & 0xFFFFFFFF)
    iend = data.rindex(b"IEND") - 4
    path.write_bytes(data[:iend] + chunk + data[iend:])


def assert_clean(out_dir: Path, uids: set[str]) -> None:
    """No planted value, original UID or planted file name anywhere in the export (bytes, headers, names)."""
    files = [p for p in out_dir.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert FILE_TAG.lower() not in str(path.relative_to(out_dir)).lower(), path
        raw = path.read_bytes().lower()
        for needle in NEEDLES:
            assert needle.lower().encode() not in raw, (path, needle)
        for uid in uids:
            assert uid.encode() not in raw, (path, uid)
        if path.suffix == ".dcm":
            ds = pydicom.dcmread(path)
            assert not any(e.tag.is_private for e in ds.iterall()), path
            assert "m3ret: PS3.15 basic profile, private tags removed" in ds.DeidentificationMethod
            # dicognito says YES only where the pixels are known to carry no burned-in text
            assert ds.get("PatientIdentityRemoved") == ("YES" if ds.get("BurnedInAnnotation") == "NO" else None)
            assert "PatientBirthDate" not in ds and "StudyDescription" not in ds
            assert ds.StudyDate != PLANTED["StudyDate"]


def _original_uids(paths: list[Path]) -> set[str]:
    uids = set()
    for p in paths:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        uids.update(str(ds.get(k)) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID") if k in ds)
    return uids


@pytest.fixture(scope="module")
def planted_library(shared_data: Path, tmp_path_factory: pytest.TempPathFactory, tiny_model: Path
                    ) -> tuple[Library, list[Path]]:
    """A real 64-slice CT DICOM series, pydicom's CT/MR/US/multi-frame files, a NIfTI and a PNG, all planted
    (tests must not modify it)."""
    tmp_path = tmp_path_factory.mktemp("planted")
    series = sorted((shared_data / "ct" / "adrenalmnist3d").glob("*/*/*.dcm"))
    first_series = sorted({p.parent for p in series})[0]
    files_dir = tmp_path / "archive" / FILE_TAG
    copies = [planted_copy(p, files_dir / "ct" / f"{FILE_TAG}_{i:03d}.dcm")
              for i, p in enumerate(sorted(first_series.glob("*.dcm")))]
    for name in PYDICOM_FILES:
        copies.append(planted_copy(pydicom_file(name), files_dir / "single" / name.replace(".dcm", "") / f"{FILE_TAG}.dcm"))
    nifti = nib.Nifti1Image(np.random.default_rng(0).uniform(0, 100, (20, 20, 8)).astype(np.float32), np.eye(4))
    nifti.header["descrip"] = PLANTED["PatientName"][:40].encode()
    nib.save(nifti, str(files_dir / f"{FILE_TAG}.nii.gz"))
    png = files_dir / f"{FILE_TAG}.png"
    cv2.imwrite(str(png), (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8))
    add_png_text(png, "Author", PLANTED["PatientName"])
    library = Library.open(tmp_path / "lib", model_path=tiny_model)
    report = index_paths(library, [files_dir], workers=0)
    assert report.n_failed == 0, report.failures
    yield library, copies
    library.close()


def _volume(cases: list[Case | object]) -> Case:
    (case,) = [c for c in cases if isinstance(c, Case)]
    return case


def test_deidentified_export_holds_no_planted_data(planted_library: tuple[Library, list[Path]], tmp_path: Path) -> None:
    library, copies = planted_library
    records = library.catalog.list_cases()
    assert len(records) == 1 + len(PYDICOM_FILES) + 2
    out = tmp_path / "export"
    exported = export_cases(records, out)
    assert sum(len(e.files) for e in exported) == len(copies) + 2
    assert_clean(out, _original_uids(copies))
    # de-identification is consistent across the series: one study, one series, one frame of reference
    (ct_case,) = [e for e in exported if len(e.files) == 64]
    headers = [pydicom.dcmread(out / f, stop_before_pixels=True) for f in ct_case.files]
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "PatientID", "StudyDate"):
        assert len({str(h.get(keyword)) for h in headers}) == 1, keyword
    assert len({h.SOPInstanceUID for h in headers}) == 64
    # ... and across the export: every planted file had the same patient, so they share one dummy patient id
    all_ids = {str(pydicom.dcmread(out / e.files[0], stop_before_pixels=True).PatientID)
               for e in exported if e.files[0].endswith(".dcm")}
    assert len(all_ids) == 1


def test_exported_series_reads_as_the_same_volume(planted_library: tuple[Library, list[Path]], tmp_path: Path) -> None:
    library, copies = planted_library
    (record,) = [r for r in library.catalog.list_cases() if r.n_files == 64]
    (exported,) = export_cases([record], tmp_path / "export")
    before = _volume(list(read_path(copies[0].parent)))
    after = _volume(list(read_path(tmp_path / "export" / exported.folder)))
    assert after.kind == "volume" and after.shape == before.shape
    assert np.array_equal(after.pixels, before.pixels)
    assert np.allclose(after.affine, before.affine) and after.spacing == pytest.approx(before.spacing)


def test_nifti_and_png_keep_their_pixels(planted_library: tuple[Library, list[Path]], tmp_path: Path) -> None:
    library, _ = planted_library
    records = [r for r in library.catalog.list_cases() if r.path.endswith((".nii.gz", ".png"))]
    exported = export_cases(records, tmp_path / "export")
    by_name = {Path(e.files[0]).name: tmp_path / "export" / e.files[0] for e in exported}
    assert set(by_name) == {"volume.nii.gz", "image.png"}
    source = {Path(r.path).suffix: Path(r.path) for r in records}
    assert np.array_equal(nib.load(str(by_name["volume.nii.gz"])).get_fdata(),
                          nib.load(str(source[".gz"])).get_fdata())
    assert np.array_equal(cv2.imread(str(by_name["image.png"]), cv2.IMREAD_UNCHANGED),
                          cv2.imread(str(source[".png"]), cv2.IMREAD_UNCHANGED))


def test_keep_identifiers_copies_unchanged(planted_library: tuple[Library, list[Path]], tmp_path: Path) -> None:
    library, copies = planted_library
    (record,) = [r for r in library.catalog.list_cases() if r.path.endswith("CT_small" + "/" + FILE_TAG + ".dcm")
                 or (r.n_files == 1 and "CT_small" in r.path)]
    (exported,) = export_cases([record], tmp_path / "export", keep_identifiers=True)
    copied = tmp_path / "export" / exported.files[0]
    assert copied.name == f"{FILE_TAG}.dcm" and copied.read_bytes() == Path(record.path).read_bytes()
    shutil.rmtree(tmp_path / "export")

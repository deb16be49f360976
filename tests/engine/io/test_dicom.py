"""DICOM reader on real files: pydicom's test data, the shared CT series, Siemens mosaics vs dcm2niix, bad input."""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import random
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array as pydicom_pixel_array

from engine.config import DEFAULT_LIMITS, ReadLimits
from engine.io.case import Case, Failure, ReadError
from engine.io.dicom import dicomdir_referenced_files, group_dicom_series, looks_like_dicom, read_dicom_series
from engine.preprocess import sample_indices

HAS_PYDICOM_DATA = importlib.util.find_spec("data_store") is not None  # the pydicom-data package (dev extra)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def pydicom_file(name: str) -> Path:
    """A file of pydicom's test data; files of the pydicom-data package skip when it is not installed."""
    bundled = get_testdata_file(name, download=False)
    if bundled is not None:
        return Path(bundled)
    if not HAS_PYDICOM_DATA:
        pytest.skip(f"{name} needs the pydicom-data package (dev extra)")
    found = get_testdata_file(name)
    assert found is not None, name
    return Path(found)


def read_all(paths: list[Path], limits: ReadLimits = DEFAULT_LIMITS) -> tuple[list[Case], list[Failure]]:
    """group_dicom_series + read_dicom_series over ``paths``: every Case and every Failure."""
    cases, failures = [], []
    for group in group_dicom_series(paths, limits):
        if isinstance(group, Failure):
            failures.append(group)
            continue
        for result in read_dicom_series(group[1], limits):
            (failures if isinstance(result, Failure) else cases).append(result)
    return cases, failures


def read_one(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Case:
    cases, failures = read_all([path], limits)
    assert not failures, failures
    assert len(cases) == 1
    return cases[0]


def pydicom_values(path: Path) -> np.ndarray:
    """Oracle: pydicom's own decoding with the modality rescale."""
    ds = pydicom.dcmread(path)
    return ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


# ---------------------------------------------------------------------------------------------- recognition


def test_looks_like_dicom(tmp_path: Path) -> None:
    assert looks_like_dicom(pydicom_file("CT_small.dcm"))
    assert looks_like_dicom(pydicom_file("ExplVR_LitEndNoMeta.dcm"))  # no preamble, no file meta
    no_extension = tmp_path / "IM0001"
    shutil.copy(pydicom_file("MR_small.dcm"), no_extension)
    assert looks_like_dicom(no_extension)
    random_bytes = tmp_path / "noise.dcm"
    random_bytes.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert not looks_like_dicom(random_bytes)
    text = tmp_path / "notes.txt"
    text.write_text("DICM is not at offset 128 here")
    assert not looks_like_dicom(text)
    extensionless_noise = tmp_path / "IM0002"
    extensionless_noise.write_bytes(b"\x08\x00" + np.random.default_rng(2).bytes(4094))  # plausible first tag
    assert not looks_like_dicom(extensionless_noise)
    assert not looks_like_dicom(tmp_path / "missing.dcm")
    assert not looks_like_dicom(tmp_path)  # a folder


# ---------------------------------------------------------------------------------------------- 2D images


def test_ct_slice_is_image2d_in_hounsfield_units() -> None:
    path = pydicom_file("CT_small.dcm")
    case = read_one(path)
    assert (case.kind, case.modality, case.intensity) == ("image2d", "CT", "HU")
    np.testing.assert_array_equal(case.pixels, pydicom_values(path))
    ds = pydicom.dcmread(path)
    assert case.spacing == tuple(float(v) for v in ds.PixelSpacing)
    assert case.uid == f"{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}"
    assert case.source_files == [path]
    assert case.metadata["PatientName"] == str(ds.PatientName)
    assert case.metadata["StudyInstanceUID"] == ds.StudyInstanceUID
    assert all(isinstance(v, str) for v in case.metadata.values())


MR_SMALL_VARIANTS = [
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_implicit.dcm",
    "MR_small_padded.dcm",
]


@pytest.mark.parametrize("name", MR_SMALL_VARIANTS)
def test_mr_small_encodings_match_uncompressed(name: str) -> None:
    reference = read_one(pydicom_file("MR_small.dcm"))
    case = read_one(pydicom_file(name))
    assert (case.kind, case.modality, case.intensity) == ("image2d", "MR", "raw")
    assert case.pixels.dtype.isnative
    np.testing.assert_array_equal(case.pixels, reference.pixels)
    np.testing.assert_array_equal(reference.pixels, pydicom_values(pydicom_file("MR_small.dcm")))


# (file, max mean absolute difference to SC_rgb.dcm): lossless encodings must match exactly.
SC_RGB_VARIANTS = [
    ("SC_rgb_rle.dcm", 0.0),
    ("SC_rgb_expb.dcm", 0.0),
    ("SC_rgb_jpeg_gdcm.dcm", 0.0),  # JPEG lossless
    ("SC_rgb_gdcm_KY.dcm", 0.0),  # JPEG 2000
    ("SC_rgb_gdcm2k_uncompressed.dcm", 0.0),
    ("SC_ybr_full_uncompressed.dcm", 1.0),  # YBR_FULL -> RGB rounding
    ("SC_ybr_full_422_uncompressed.dcm", 2.0),
    ("SC_rgb_jpeg_dcmtk.dcm", 3.0),  # JPEG baseline, YBR_FULL
    ("SC_rgb_jpeg_lossy_gdcm.dcm", 3.0),
    ("SC_rgb_dcmtk_+eb+cy+n1.dcm", 3.0),
    ("SC_rgb_jls_lossy_line.dcm", 3.0),  # JPEG-LS near-lossless
]


@pytest.mark.parametrize(("name", "tolerance"), SC_RGB_VARIANTS)
def test_rgb_encodings_come_out_rgb(name: str, tolerance: float) -> None:
    reference = read_one(pydicom_file("SC_rgb.dcm"))
    case = read_one(pydicom_file(name))
    assert case.kind == "image2d" and case.is_color and case.shape == (100, 100, 3)
    diff = np.abs(case.pixels.astype(np.float64) - reference.pixels.astype(np.float64)).mean()
    assert diff <= tolerance, f"{name}: mean |diff| {diff:.2f} > {tolerance}"


@pytest.mark.parametrize(
    ("compressed", "uncompressed"), [("US1_J2KR.dcm", "US1_UNCR.dcm"), ("US1_J2KI.dcm", "US1_UNCI.dcm")]
)
def test_ultrasound_still_jpeg2000(compressed: str, uncompressed: str) -> None:
    case = read_one(pydicom_file(compressed))
    reference = read_one(pydicom_file(uncompressed))
    assert (case.kind, case.modality, case.shape) == ("image2d", "US", (480, 640, 3))
    assert np.abs(case.pixels.astype(int) - reference.pixels.astype(int)).mean() < 1.0


def test_jpeg_lossless_greyscale_and_12bit_extended_refused() -> None:
    lossless = read_one(pydicom_file("JPEG-LL.dcm"))
    assert lossless.shape == (1024, 256)
    assert np.corrcoef(lossless.pixels.ravel().astype(float), pydicom_values(Path(pydicom_file("JPEG-LL.dcm"))).ravel())[0, 1] > 0.999
    # 12-bit JPEG Extended: only GPL libjpeg decodes it, which we do not ship -> a clear one-line failure
    cases, failures = read_all([Path(pydicom_file("JPGExtended.dcm"))])
    assert not cases and len(failures) == 1
    assert "12-bit JPEG Extended" in failures[0].reason and "\n" not in failures[0].reason


@pytest.mark.parametrize("name", ["6154", "6247", "6278"])
def test_monochrome1_radiograph_is_inverted(name: str) -> None:
    path = next(Path(pydicom_file("CT_small.dcm")).parent.rglob(name))  # dicomdirtests/.../CR*/<name>
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    case = read_one(path)
    assert (case.kind, case.modality) == ("image2d", "XR")  # CR -> XR
    stored = ds.pixel_array.astype(np.float64).ravel()
    assert np.corrcoef(stored, case.pixels.astype(np.float64).ravel())[0, 1] < -0.999  # brighter = higher


def test_palette_colour_becomes_rgb() -> None:
    case = read_one(pydicom_file("examples_palette.dcm"))
    assert case.kind == "image2d" and case.is_color
    assert len(np.unique(case.pixels.reshape(-1, 3), axis=0)) > 10


# ---------------------------------------------------------------------------------------------- multi-frame


@pytest.mark.parametrize(
    "name",
    ["emri_small.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm",
     "emri_small_big_endian.dcm"],
)
def test_enhanced_mr_multiframe_is_volume(name: str) -> None:
    case = read_one(pydicom_file(name))
    assert (case.kind, case.modality, case.shape) == ("volume", "MR", (10, 64, 64))
    np.testing.assert_array_equal(case.pixels, pydicom.dcmread(pydicom_file("emri_small.dcm")).pixel_array)


def test_enhanced_ct_uses_per_frame_positions() -> None:
    path = pydicom_file("eCT_Supplemental.dcm")
    case = read_one(path)
    ds = pydicom.dcmread(path)
    z = [float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in ds.PerFrameFunctionalGroupsSequence]
    assert (case.kind, case.modality, case.intensity, case.shape) == ("volume", "CT", "HU", (2, 512, 512))
    assert case.spacing[0] == pytest.approx(abs(z[1] - z[0]))
    assert case.affine is not None and case.affine[2, 3] == pytest.approx(min(z))
    order = np.argsort(z)  # inferior first
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient[:3]] == [-1, 0, 0]
    stored = ds.pixel_array[order][:, :, ::-1]  # columns run towards Right in the file: flipped to Left
    rescale = shared.PixelValueTransformationSequence[0]
    expected = stored * float(rescale.RescaleSlope) + float(rescale.RescaleIntercept)
    assert np.all(np.diag(case.affine)[:3] > 0)
    np.testing.assert_array_equal(case.pixels, expected)


def test_ultrasound_cine_is_a_sampled_video() -> None:
    path = pydicom_file("color3d_jpeg_baseline.dcm")
    case = read_one(path, ReadLimits(video_frames=6))
    assert (case.kind, case.modality, case.frame_count) == ("video", "US", 120)
    assert case.shape == (6, 480, 640, 3)
    np.testing.assert_array_equal(case.frame_indices, sample_indices(120, 6))
    assert case.fps == pytest.approx(1000 / 33.333, rel=1e-3)  # FrameTime in ms
    for k in (0, 5):
        expected = pydicom_pixel_array(path, index=int(case.frame_indices[k]))
        np.testing.assert_array_equal(case.pixels[k], expected)


def test_short_cine_keeps_every_frame() -> None:
    case = read_one(pydicom_file("examples_ybr_color.dcm"))  # 30 frames, YBR_FULL_422 JPEG baseline
    assert case.kind == "video" and case.shape == (30, 240, 320, 3) and case.frame_count == 30
    np.testing.assert_array_equal(case.frame_indices, np.arange(30))


# ---------------------------------------------------------------------------------------------- grouping


@pytest.mark.parametrize("name", ["rtstruct.dcm", "test-SR.dcm", "rtplan.dcm", "liver.dcm", "rtdose.dcm"])
def test_non_image_objects_are_skipped(name: str) -> None:
    path = pydicom_file(name)
    results = list(group_dicom_series([path]))
    assert len(results) == 1 and isinstance(results[0], Failure)
    assert results[0].reason.startswith("skipped: not an image (")
    assert results[0].path == path


def test_dicomdir_lists_its_files_and_is_not_an_image() -> None:
    dicomdir = pydicom_file("DICOMDIR")
    ds = pydicom.dcmread(dicomdir)
    referenced = [r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r]
    files = dicomdir_referenced_files(dicomdir)
    assert len(files) == len(referenced) > 0
    assert all(f.is_file() and dicomdir.parent in f.parents for f in files)
    skipped = list(group_dicom_series([dicomdir]))
    assert skipped == [Failure(dicomdir, "skipped: not an image (DICOMDIR)")]
    cases, failures = read_all(files)
    assert {c.kind for c in cases} == {"image2d", "volume"}  # single slices and two small MR/CT stacks
    assert all("\n" not in f.reason for f in failures)


def test_dicomdir_that_is_not_one_or_is_truncated(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="not a DICOMDIR"):
        dicomdir_referenced_files(pydicom_file("CT_small.dcm"))
    folder = pydicom_file("DICOMDIR").parent
    complete = dicomdir_referenced_files(folder / "DICOMDIR")
    copy = tmp_path / "tree"  # the whole tree, so the references of the truncated copy resolve
    shutil.copytree(folder, copy)
    data = (folder / "DICOMDIR").read_bytes()
    (copy / "DICOMDIR").write_bytes(data[: len(data) // 2])
    partial = dicomdir_referenced_files(copy / "DICOMDIR")
    assert 0 < len(partial) < len(complete)


def _write_stack(src: Path, folder: Path, positions: list[float], orientation: list[float], series_uid: str,
                 names: list[str], **extra: object) -> None:
    """Slices made from one real file: slice i gets position ``positions[i]`` along the normal, value 100 * i."""
    ds = pydicom.dcmread(src)
    normal = np.cross(orientation[:3], orientation[3:])
    base = ds.pixel_array.astype(np.int16)
    for i, (distance, name) in enumerate(zip(positions, names)):
        ds.ImagePositionPatient = [float(v) for v in normal * distance]
        ds.ImageOrientationPatient = orientation
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.InstanceNumber = len(positions) - i  # misleading on purpose
        ds.PixelData = (np.full_like(base, 100 * i) + (base > 0)).astype(np.int16).tobytes()
        for key, value in extra.items():
            setattr(ds, key, value)
        ds.save_as(folder / name, enforce_file_format=True)


def test_slices_sorted_by_position_not_name_or_instance_number(tmp_path: Path) -> None:
    rng = random.Random(0)
    distances = [-12.5 + 2.5 * k for k in range(8)]
    rng.shuffle(distances)
    names = [f"{rng.getrandbits(40):x}" for _ in distances]  # extension-less, random
    _write_stack(pydicom_file("CT_small.dcm"), tmp_path, distances, [1, 0, 0, 0, 1, 0], "1.2.3.4", names)
    groups = list(group_dicom_series(sorted(tmp_path.iterdir())))
    assert len(groups) == 1 and groups[0][0] == "1.2.3.4" and len(groups[0][1]) == 8
    (case,) = list(read_dicom_series(groups[0][1]))
    assert case.kind == "volume" and case.shape == (8, 128, 128)
    slice_ids = np.round((case.pixels.max(axis=(1, 2)) + 1024) / 100).astype(int)  # value 100 * i - 1024 HU
    expected = [i for _, i in sorted(zip(distances, range(8)))]
    assert slice_ids.tolist() == expected
    assert case.spacing[0] == pytest.approx(2.5)
    assert case.affine[2, 3] == pytest.approx(-12.5)  # first slice is the most inferior
    assert len(case.source_files) == 8 and case.path == tmp_path


def test_sagittal_stack_is_reoriented_to_lps(tmp_path: Path) -> None:
    # Sagittal: column index runs towards Posterior (+y), row index towards Inferior (-z).
    orientation = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
    distances = [4.0, 0.0, 2.0]
    _write_stack(pydicom_file("CT_small.dcm"), tmp_path, distances, orientation, "1.2.3.5", ["c", "a", "b"])
    cases, failures = read_all(sorted(tmp_path.iterdir()))
    assert not failures and len(cases) == 1
    case = cases[0]
    assert tuple(nib.aff2axcodes(LPS_TO_RAS @ case.affine)) == ("L", "P", "S")
    assert np.all(np.diag(case.affine)[:3] > 0)  # canonical: every axis positive along L, P, S
    assert case.shape == (128, 128, 3)  # Z (was rows) Y (was columns) X (was slices)
    ids = np.round((case.pixels.max(axis=(0, 1)) + 1024) / 100).astype(int)  # along X = Left
    # The plane normal cross(+y, -z) points Right, so x = -distance: left-most is slice 0 (4 mm), then 2, then 1.
    assert ids.tolist() == [0, 2, 1]


def test_one_series_uid_with_two_orientations_is_split(tmp_path: Path) -> None:
    src = pydicom_file("CT_small.dcm")
    _write_stack(src, tmp_path, [0.0, 1.0, 2.0], [1, 0, 0, 0, 1, 0], "1.2.3.6", ["a1", "a2", "a3"])
    _write_stack(src, tmp_path, [0.0, 1.0], [0, 1, 0, 0, 0, -1], "1.2.3.6", ["b1", "b2"])
    groups = [g for g in group_dicom_series(sorted(tmp_path.iterdir())) if not isinstance(g, Failure)]
    assert sorted(len(files) for _, files in groups) == [2, 3]
    assert len({key for key, _ in groups}) == 2 and all(key.startswith("1.2.3.6") for key, _ in groups)


def test_repeated_positions_use_the_first_volume(tmp_path: Path) -> None:
    src = pydicom_file("CT_small.dcm")
    _write_stack(src, tmp_path, [0.0, 3.0, 6.0], [1, 0, 0, 0, 1, 0], "1.2.3.7", ["t1a", "t1b", "t1c"],
                 AcquisitionNumber=1)
    _write_stack(src, tmp_path, [0.0, 3.0, 6.0], [1, 0, 0, 0, 1, 0], "1.2.3.7", ["t2a", "t2b", "t2c"],
                 AcquisitionNumber=2)
    cases, failures = read_all(sorted(tmp_path.iterdir()))
    assert not failures and len(cases) == 1
    assert cases[0].shape == (3, 128, 128) and "first volume" in cases[0].metadata["note"]
    assert cases[0].spacing[0] == pytest.approx(3.0)


# ---------------------------------------------------------------------------------------------- identity


def test_fingerprint_follows_content_not_names(tmp_path: Path) -> None:
    a, b = tmp_path / "a.dcm", tmp_path / "renamed"
    shutil.copy(pydicom_file("CT_small.dcm"), a)
    shutil.copy(pydicom_file("CT_small.dcm"), b)
    other = read_one(pydicom_file("MR_small.dcm"))
    assert read_one(a).fingerprint == read_one(b).fingerprint != other.fingerprint


# ---------------------------------------------------------------------------------------------- bad input


def test_truncated_file_is_a_one_line_failure(tmp_path: Path) -> None:
    data = pydicom_file("CT_small.dcm").read_bytes()
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(data[: len(data) // 2])
    cases, failures = read_all([truncated, pydicom_file("MR_truncated.dcm")])
    assert not cases and len(failures) == 2
    assert all(f.reason and "\n" not in f.reason for f in failures)


def test_random_bytes_named_dcm(tmp_path: Path) -> None:
    noise = tmp_path / "noise.dcm"
    noise.write_bytes(np.random.default_rng(1).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    assert list(group_dicom_series([noise])) == [Failure(noise, "not a DICOM file")]
    assert all(isinstance(r, Failure) for r in read_dicom_series([noise]))


@pytest.mark.parametrize(("rows", "columns", "frames"), [(60000, 60000, 1), (4096, 4096, 60000), (512, 512, 99999)])
def test_header_claiming_huge_image_is_refused_before_decoding(tmp_path: Path, rows: int, columns: int,
                                                               frames: int) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.Rows, ds.Columns = rows, columns
    ds.NumberOfFrames = frames
    path = tmp_path / "huge.dcm"
    ds.save_as(path, enforce_file_format=True)
    start = time.perf_counter()
    cases, failures = read_all([path])
    assert time.perf_counter() - start < 5
    assert not cases and len(failures) == 1 and failures[0].reason.startswith("refused:")


def test_voxel_limit_is_configurable() -> None:
    cases, failures = read_all([pydicom_file("CT_small.dcm")], ReadLimits(max_voxels=128 * 128 - 1))
    assert not cases and failures[0].reason.startswith("refused:") and "voxels" in failures[0].reason


def test_failures_never_log_patient_identity(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Secret^Person", "PID-424242", "19010101"
    path = tmp_path / "ct.dcm"
    ds.save_as(path, enforce_file_format=True)
    with caplog.at_level(logging.DEBUG, logger="engine"):
        read_all([path], ReadLimits(max_voxels=10))
        case = read_one(path)
    assert case.metadata["PatientID"] == "PID-424242"
    assert not any(s in caplog.text for s in ("Secret", "PID-424242", "19010101"))


# ---------------------------------------------------------------------------------------------- shared data


def _manifest(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_shared_ct_dicom_series(shared_data: Path) -> None:
    rows = [r for r in _manifest(shared_data / "manifest.csv") if (shared_data / r["path"]).is_dir()]
    assert rows, "the manifest lists DICOM series folders"
    for n, row in enumerate(rows):
        folder = shared_data / row["path"]
        cases, failures = read_all(sorted(folder.iterdir()))
        assert not failures, failures
        assert len(cases) == 1, folder
        case = cases[0]
        assert (case.kind, case.modality, case.intensity, case.shape) == ("volume", "CT", "HU", (64, 64, 64))
        assert set(np.unique(case.pixels).tolist()) <= {0, 255} and case.pixels.max() == 255
        assert len(case.source_files) == 64 and case.path == folder
        if n % 8:
            continue  # the slice-order oracle below is slow: checked on every 8th series
        # Oracle for the order: the files' own positions, sorted along z, read by pydicom.
        by_z = sorted(folder.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
        for k in (0, 31, 63):
            np.testing.assert_array_equal(case.pixels[k], pydicom_values(by_z[k]))


def _dcm2niix_references(folder: Path) -> dict[tuple[int, str], Path]:
    refs = {}
    for sidecar in folder.glob("*.json"):
        meta = json.loads(sidecar.read_text())
        refs[(int(meta["SeriesNumber"]), meta["SeriesDescription"])] = sidecar.with_suffix(".nii")
    return refs


def _formats_series(shared_data: Path) -> list[Path]:
    manifest = shared_data / "formats" / "manifest.csv"
    if not manifest.is_file():
        pytest.skip("formats/manifest.csv absent")
    rows = _manifest(manifest)
    return [manifest.parent / r["path"] for r in rows if (manifest.parent / r["path"]).is_dir()]


def test_siemens_mosaics_match_dcm2niix(shared_data: Path) -> None:
    series = _formats_series(shared_data)
    references = _dcm2niix_references(shared_data / "formats/mri/dcm_qa_siemens/dcm2niix_reference")
    compared = 0
    for folder in series:
        cases, failures = read_all(sorted(folder.iterdir()))
        assert not failures, failures
        assert len(cases) == 1, folder
        case = cases[0]
        assert (case.kind, case.modality) == ("volume", "MR")
        assert "first volume" in case.metadata["note"]  # each series holds 2 mosaic volumes (4D)
        reference = references.get((int(case.metadata["SeriesNumber"]), case.metadata["SeriesDescription"]))
        if reference is None:  # the multiband JPEG / JPEG 2000 mosaics have no reference conversion
            assert case.shape[0] == int(case.metadata["slices"])
            continue
        canonical = nib.as_closest_canonical(nib.load(reference))  # RAS+
        ras = np.asarray(canonical.dataobj)[..., 0]  # first volume, X Y Z along R A S
        expected = ras[::-1, ::-1, :].transpose(2, 1, 0)  # Z Y X along S P L
        np.testing.assert_array_equal(case.pixels, expected, err_msg=str(folder))
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        flip[:2, 3] = [ras.shape[0] - 1, ras.shape[1] - 1]
        expected_affine = LPS_TO_RAS @ canonical.affine @ flip  # RAS->LPS world, flipped index axes
        np.testing.assert_allclose(case.affine, expected_affine, atol=1e-3, err_msg=str(folder))
        zooms = canonical.header.get_zooms()[:3]
        np.testing.assert_allclose(case.spacing, zooms[::-1], rtol=1e-4)
        compared += 1
    assert compared >= 19


def test_series_over_the_voxel_limit_is_refused_as_a_whole(tmp_path: Path) -> None:
    _write_stack(pydicom_file("CT_small.dcm"), tmp_path, [0.0, 1.0, 2.0, 3.0], [1, 0, 0, 0, 1, 0], "1.2.3.8",
                 ["a", "b", "c", "d"])
    cases, failures = read_all(sorted(tmp_path.iterdir()), ReadLimits(max_voxels=128 * 128 * 3))
    assert not cases and len(failures) == 1
    assert failures[0].path == tmp_path and failures[0].reason.startswith("refused:")


def test_degenerate_orientation_does_not_crash(tmp_path: Path) -> None:
    _write_stack(pydicom_file("CT_small.dcm"), tmp_path, [0.0, 1.0], [1, 0, 0, 0, 1, 0], "1.2.3.9", ["a", "b"])
    for path in tmp_path.iterdir():
        ds = pydicom.dcmread(path)
        ds.ImageOrientationPatient = [0, 0, 0, 0, 0, 0]
        ds.save_as(path, enforce_file_format=True)
    cases, failures = read_all(sorted(tmp_path.iterdir()))
    assert not failures and [c.kind for c in cases] == ["image2d", "image2d"]  # no stack geometry: two images


def test_h264_endoscopy_video_in_dicom(shared_data: Path, tmp_path: Path) -> None:
    """A real H.264 clip wrapped as DICOM Video Endoscopic Image: frames as the video-file reader decodes them."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.encaps import encapsulate

    from engine.io.video import read_video

    rows = [r for r in _manifest(shared_data / "manifest.csv") if r["path"].endswith(".mp4")]
    if not rows:
        pytest.skip("no mp4 in the shared data")
    clip = shared_data / rows[0]["path"]
    limits = ReadLimits(video_frames=8)
    reference = read_video(clip, limits)
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.MPEG4HP41
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID, ds.Modality, ds.FrameTime = pydicom.uid.generate_uid(), "ES", 40.0
    ds.Rows, ds.Columns = reference.shape[1:3]
    ds.NumberOfFrames, ds.SamplesPerPixel, ds.PhotometricInterpretation = reference.frame_count, 3, "YBR_PARTIAL_420"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([clip.read_bytes()])
    path = tmp_path / "endoscopy.dcm"
    ds.save_as(path, enforce_file_format=True)
    case = read_one(path, limits)
    assert (case.kind, case.modality, case.frame_count, case.fps) == ("video", "ES", reference.frame_count, 25.0)
    np.testing.assert_array_equal(case.frame_indices, reference.frame_indices)
    np.testing.assert_array_equal(case.pixels, reference.pixels)


def test_grey_xa_cine_is_a_video_with_cine_rate(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("emri_small.dcm"))  # 10 grey frames, re-labelled as an angiography cine
    ds.Modality, ds.CineRate = "XA", 12
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.12.1"  # XA Image Storage
    path = tmp_path / "xa.dcm"
    ds.save_as(path, enforce_file_format=True)
    case = read_one(path, ReadLimits(video_frames=4))
    assert (case.kind, case.modality, case.frame_count, case.fps, case.shape) == ("video", "XA", 10, 12.0, (4, 64, 64))
    np.testing.assert_array_equal(case.pixels, ds.pixel_array[sample_indices(10, 4)])


def test_enhanced_ct_with_repeated_positions_uses_the_first_frame_at_each(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("eCT_Supplemental.dcm"))
    stored = ds.pixel_array  # 2 512 512, frames at two positions
    ds.PerFrameFunctionalGroupsSequence = list(ds.PerFrameFunctionalGroupsSequence) * 2  # a second time point
    ds.NumberOfFrames = 4
    ds.PixelData = np.concatenate([stored, stored + 7]).astype(stored.dtype).tobytes()
    path = tmp_path / "ect_4d.dcm"
    ds.save_as(path, enforce_file_format=True)
    case = read_one(path)
    reference = read_one(pydicom_file("eCT_Supplemental.dcm"))
    assert case.kind == "volume" and case.shape == (2, 512, 512)
    assert "first frame" in case.metadata["note"]
    np.testing.assert_array_equal(case.pixels, reference.pixels)  # time point 1 only


# ---- broken series and inconsistent headers (issue 14) ------------------------------------------------------


def _ct_series(folder: Path, n: int = 6) -> list[Path]:
    import pydicom
    from pydicom.data import get_testdata_file

    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for z in range(n):
        ds = source.copy()
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.77"
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.77.{z + 1}"
        ds.ImagePositionPatient = [0.0, 0.0, 2.5 * z]
        paths.append(folder / f"s{z}.dcm")
        ds.save_as(paths[-1], enforce_file_format=False)
    return paths


def test_a_truncated_slice_is_left_out_and_the_series_is_still_a_volume(tmp_path: Path) -> None:
    from engine.io.scan import read_path

    paths = _ct_series(tmp_path / "series")
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) * 2 // 3])
    items = list(read_path(tmp_path / "series"))
    volumes = [i for i in items if isinstance(i, Case)]
    failures = [i for i in items if isinstance(i, Failure)]
    assert [v.kind for v in volumes] == ["volume"] and volumes[0].shape[0] == 5  # before: the whole series failed
    assert [f.path for f in failures] == [paths[2]]


def test_nan_positions_on_a_few_slices_do_not_split_the_series(tmp_path: Path) -> None:
    import warnings

    import pydicom

    from engine.io.scan import read_path

    paths = _ct_series(tmp_path / "series")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(paths[4])
        ds.ImagePositionPatient = ["nan", "nan", "nan"]
        ds.save_as(paths[4], enforce_file_format=False)
    items = list(read_path(tmp_path / "series"))
    assert [i.kind for i in items if isinstance(i, Case)] == ["volume"]  # before: 6 separate 2D cases
    assert [i.path for i in items if isinstance(i, Failure)] == [paths[4]]


def test_a_wrong_rows_header_is_refused_not_misread(tmp_path: Path) -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    from engine.io.scan import read_path

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Rows = 64  # the data holds 128 rows
    ds.save_as(tmp_path / "wrong_rows.dcm", enforce_file_format=False)
    (item,) = list(read_path(tmp_path / "wrong_rows.dcm"))
    assert isinstance(item, Failure) and "inconsistent header" in item.reason  # before: a 64x128 image


def test_jpeg2000_with_a_wrong_samples_per_pixel_fails_instead_of_aborting(tmp_path: Path) -> None:
    """gdcm's JPEG 2000 codec aborted the process on this file (found by the robustness run)."""
    import subprocess
    import sys

    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("JPEG2000.dcm"))
    ds.SamplesPerPixel = 3
    ds.save_as(tmp_path / "j2k_rgb_header.dcm", enforce_file_format=False)
    script = ("import sys; from engine.io.scan import read_path; "
              f"print([getattr(i, 'reason', 'case') for i in read_path({str(tmp_path / 'j2k_rgb_header.dcm')!r})])")
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[3],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]  # before: -6 (SIGABRT in gdcmJPEG2000Codec.cxx)

"""scan: discover (classification, DICOM grouping, DICOMDIR), read_unit (never raises), read_path on both shared
manifests."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from engine.config import ReadLimits
from engine.io.case import Case, Failure
from engine.io.scan import SourceUnit, classify, dicom_available, discover, read_path, read_unit

RNG = np.random.default_rng(7)
needs_dicom = pytest.mark.skipif(not dicom_available(), reason="engine.io.dicom (DICOM reader) not available yet")


def _nifti(path: Path, shape: tuple[int, ...] = (8, 9, 10)) -> Path:
    nib.save(nib.Nifti1Image(RNG.integers(0, 100, shape).astype(np.int16), np.eye(4)), path)
    return path


def _video(path: Path, n: int = 6) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (32, 24), True)
    for i in range(n):
        writer.write(np.full((24, 32, 3), 20 * i, np.uint8))
    writer.release()
    return path


def _png(path: Path) -> Path:
    ok, encoded = cv2.imencode(".png", RNG.integers(0, 256, (12, 14), dtype=np.uint8))
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    root = tmp_path / "mixed"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden_dir").mkdir()
    _nifti(root / "vol.nii.gz")
    _nifti(root / "sub" / "plain.nii")
    _video(root / "sub" / "clip.avi")
    _png(root / "sub" / "deeper" / "still.png")
    _png(root / "sub" / "deeper" / "no_extension_png")  # found by its magic bytes
    _png(root / ".hidden.png")
    _png(root / ".hidden_dir" / "inside.png")
    (root / "notes.txt").write_text("not an image")
    (root / "meta.json").write_text("{}")
    (root / "table.csv").write_text("a,b\n")
    (root / "README.md").write_text("# readme")
    (root / "blob.xyz").write_bytes(RNG.integers(0, 256, 512, dtype=np.uint8).tobytes())
    (root / "no_extension_blob").write_bytes(RNG.integers(0, 256, 512, dtype=np.uint8).tobytes())
    return root


def test_discover_classifies_and_skips(mixed_folder: Path) -> None:
    found = list(discover(mixed_folder))
    units = [u for u in found if isinstance(u, SourceUnit)]
    failures = [f for f in found if isinstance(f, Failure)]
    by_name = {u.files[0].name: u.reader for u in units}
    assert by_name == {
        "vol.nii.gz": "nifti",
        "plain.nii": "nifti",
        "clip.avi": "video",
        "still.png": "image",
        "no_extension_png": "image",
    }
    assert sorted((f.path.name, f.reason) for f in failures) == [
        ("blob.xyz", "unsupported file type"),
        ("no_extension_blob", "unsupported file type"),
    ]
    for unit in units:
        assert unit.key == str(unit.files[0].resolve())


def test_discover_reports_progress(mixed_folder: Path) -> None:
    counts: list[int] = []
    list(discover(mixed_folder, progress=counts.append))
    files = [p for p in mixed_folder.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.parts[-2:])]
    assert sum(counts) == len(files)


def test_read_path_on_folder_and_single_file(mixed_folder: Path) -> None:
    results = list(read_path(mixed_folder))
    cases = [r for r in results if isinstance(r, Case)]
    assert sorted(c.kind for c in cases) == ["image2d", "image2d", "video", "volume", "volume"]
    assert len(results) - len(cases) == 2
    [single] = list(read_path(mixed_folder / "vol.nii.gz"))
    assert isinstance(single, Case) and single.kind == "volume"
    [missing] = list(read_path(mixed_folder / "nope.nii"))
    assert isinstance(missing, Failure) and "no such file" in missing.reason


def test_classify_by_extension_and_magic(tmp_path: Path) -> None:
    assert classify(_nifti(tmp_path / "A.NII.GZ")) == "nifti"
    assert classify(_png(tmp_path / "x.PNG")) == "image"
    assert classify(tmp_path / "DICOMDIR") == "dicomdir"
    (tmp_path / "notes.TXT").write_text("x")
    assert classify(tmp_path / "notes.TXT") == "ignore"


def _malformed_files(folder: Path) -> list[Path]:
    folder.mkdir()
    valid = _nifti(folder / "valid.nii.gz", (32, 32, 32))
    bad = []
    random_nii = folder / "random.nii.gz"
    random_nii.write_bytes(RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    truncated = folder / "truncated.nii.gz"
    truncated.write_bytes(valid.read_bytes()[: valid.stat().st_size // 2])
    valid.unlink()
    huge = folder / "huge.nii"
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape((10_000, 10_000, 10_000))  # 10^12 voxels
    header["vox_offset"] = 352
    huge.write_bytes(header.binaryblock + b"\x00" * 1028)
    huge_gz = folder / "huge.nii.gz"
    huge_gz.write_bytes(gzip.compress(huge.read_bytes()))
    empty_mp4 = folder / "empty.mp4"
    empty_mp4.write_bytes(b"")
    garbage_mp4 = folder / "garbage.mp4"
    garbage_mp4.write_bytes(b"ftypisom" * 100)
    corrupt_png = folder / "corrupt.png"
    good_png = _png(folder / "good.png").read_bytes()
    corrupt_png.write_bytes(good_png[:33] + bytes(RNG.integers(0, 256, 64, dtype=np.uint8)))
    (folder / "good.png").unlink()
    bad += [random_nii, truncated, huge, huge_gz, empty_mp4, garbage_mp4, corrupt_png]
    return bad


def test_malformed_inputs_each_give_one_line_failure(tmp_path: Path) -> None:
    bad = _malformed_files(tmp_path / "bad")
    for path in bad:
        [unit] = list(discover(path))
        assert isinstance(unit, SourceUnit), path
        [result] = read_unit(unit)
        assert isinstance(result, Failure), path
        assert result.path == path
        assert result.reason and "\n" not in result.reason and len(result.reason) < 400, result
    results = list(read_path(tmp_path / "bad"))
    assert len(results) == len(bad) and all(isinstance(r, Failure) for r in results)
    huge_reasons = [r.reason for r in results if r.path.name.startswith("huge")]
    assert all("exceeds the limit" in reason for reason in huge_reasons)


def test_read_unit_honours_limits(tmp_path: Path) -> None:
    unit = SourceUnit("nifti", (_nifti(tmp_path / "v.nii"),), "k")
    [result] = read_unit(unit, ReadLimits(max_voxels=10))
    assert isinstance(result, Failure) and "exceeds" in result.reason
    [unknown] = read_unit(SourceUnit("pdf", (tmp_path / "v.nii",), "k"))
    assert isinstance(unknown, Failure)


@needs_dicom
def test_dicomdir_and_extensionless_dicom(shared_data: Path, tmp_path: Path) -> None:
    import pydicom
    from pydicom.fileset import FileSet

    series = sorted((shared_data / "ct" / "adrenalmnist3d").glob("*/*/*.dcm"))[:64]
    folder = series[0].parent
    files = sorted(folder.glob("*.dcm"))
    fileset = FileSet()
    for path in files:
        ds = pydicom.dcmread(path)
        for keyword, default in (("PatientID", "anon"), ("StudyDate", "20000101"), ("StudyTime", "000000"),
                                 ("StudyID", "1"), ("SeriesNumber", 1), ("InstanceNumber", 1)):
            if keyword not in ds:
                setattr(ds, keyword, default)
        fileset.add(ds)
    out = tmp_path / "media"
    fileset.write(out)  # DICOMDIR + extensionless files under PT*/ST*/SE*/
    found = list(discover(out))
    units = [u for u in found if isinstance(u, SourceUnit)]
    assert [u.reader for u in units] == ["dicom"], found
    assert len(units[0].files) == len(files)
    [case] = read_unit(units[0])
    assert isinstance(case, Case) and case.kind == "volume"
    [original] = list(read_path(folder))
    np.testing.assert_array_equal(case.pixels, original.pixels)


def _manifest_rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="") as f:
        return list(csv.DictReader(f))


def _expected_kind(row_path: Path) -> str:
    name = row_path.name.lower()
    if row_path.is_dir() or name.endswith((".nii", ".nii.gz")):
        return "volume"  # DICOM series folders and NIfTI volumes
    if name.endswith((".mp4", ".avi", ".mov", ".mkv", ".webm")):
        return "video"
    return "image2d"


@pytest.mark.parametrize("manifest_name", ["manifest.csv", "formats/manifest.csv"])
def test_every_manifest_case_reads(shared_data: Path, manifest_name: str) -> None:
    manifest = shared_data / manifest_name
    problems: list[str] = []
    skipped = 0
    for row in _manifest_rows(manifest):
        path = manifest.parent / row["path"]
        if path.is_dir() and not dicom_available():
            skipped += 1
            continue
        results = list(read_path(path))
        kinds = [r.kind for r in results if isinstance(r, Case)]
        failures = [str(r) for r in results if isinstance(r, Failure)]
        if failures or kinds != [_expected_kind(path)]:
            problems.append(f"{row['path']}: kinds={kinds} failures={failures}")
    assert not problems, f"{len(problems)} rows: " + "; ".join(problems[:5])
    if skipped:
        pytest.skip(f"{skipped} DICOM folder rows skipped: DICOM reader not available")


def test_without_dicom_reader_dicom_folders_fail_once_each(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.io.scan as scan

    monkeypatch.setattr(scan, "_dicom", None)
    series = shared_data / "formats" / "mri" / "dcm_qa_siemens" / "series" / "ax"
    found = list(discover(series))
    folders = sorted(p for p in series.iterdir() if p.is_dir())
    assert [f.path for f in found if isinstance(f, Failure)] == folders  # extensionless files found by magic
    assert all("not available" in f.reason for f in found)


# ---- special files and odd names never stop or hang the walk (issue 14) -------------------------------------


def test_special_files_and_link_loops_are_failures_not_hangs(tmp_path: Path) -> None:
    import os

    root = tmp_path / "odd"
    root.mkdir()
    _png(root / "good.png")
    os.mkfifo(root / "pipe.dcm")
    os.mkfifo(root / "pipe_without_extension")
    os.symlink("/dev/zero", root / "zero.dcm")
    os.symlink(root / "loop_a", root / "loop_b")
    os.symlink(root / "loop_b", root / "loop_a")
    os.symlink(root / "gone.png", root / "dangling.png")
    found = list(discover(root))  # before the fix: RuntimeError (loop) or blocked forever (FIFO, /dev/zero)
    units = [u for u in found if isinstance(u, SourceUnit)]
    reasons = {f.path.name: f.reason for f in found if isinstance(f, Failure)}
    assert [u.files[0].name for u in units] == ["good.png"]
    assert "named pipe" in reasons["pipe.dcm"] and "named pipe" in reasons["pipe_without_extension"]
    assert "device" in reasons["zero.dcm"]
    assert "link loop" in reasons["loop_a"] and "link loop" in reasons["loop_b"]
    assert "dangling" in reasons["dangling.png"]
    assert [f.reason for f in discover(root / "pipe.dcm")] == [reasons["pipe.dcm"]]


def test_non_utf8_file_names_are_kept_losslessly(tmp_path: Path) -> None:
    import os

    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9-\xff.png")
    _png(Path(os.fsdecode(raw)))
    (unit,) = list(discover(tmp_path))
    assert os.fsencode(unit.files[0]) == raw
    (case,) = read_unit(unit)
    assert isinstance(case, Case) and case.shape == (12, 14)
    failure = Failure(unit.files[0], "why")
    assert str(failure).endswith("caf\\xe9-\\xff.png: why")  # printable, and still says which bytes


def test_excluded_folder_is_not_walked(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "catalog.sqlite-wal").write_bytes(b"\0" * 64)
    assert [f.path.name for f in discover(tmp_path) if isinstance(f, Failure)] == ["catalog.sqlite-wal"]
    assert all(isinstance(u, SourceUnit) for u in discover(tmp_path, exclude=[tmp_path / "library"]))


def test_degenerate_cases_are_refused_with_a_reason(tmp_path: Path) -> None:
    ok, encoded = cv2.imencode(".png", np.zeros((40, 1), np.uint8))
    (tmp_path / "line.png").write_bytes(encoded.tobytes())
    _video(tmp_path / "one_frame.avi", n=1)
    _nifti(tmp_path / "needle.nii", shape=(1, 1, 600))
    reasons = {f.path.name: f.reason for f in read_path(tmp_path)}
    assert set(reasons) == {"line.png", "one_frame.avi", "needle.nii"}
    assert all(r.startswith("refused:") for r in reasons.values()), reasons


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_NAMES = st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b".."))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(st.tuples(_NAMES, st.binary(max_size=200)), min_size=1, max_size=8, unique_by=lambda f: f[0]))
def test_discover_accounts_for_every_file_whatever_its_name_and_bytes(tmp_path: Path, files: list) -> None:
    import os
    import shutil

    root = tmp_path / "tree"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    written = set()
    for name, data in files:
        raw = os.path.join(os.fsencode(root), name)
        with open(raw, "wb") as f:
            f.write(data)
        written.add(os.fsdecode(raw))
    found: set[str] = set()
    for item in discover(root):  # never raises
        found |= {str(item.path)} if isinstance(item, Failure) else {str(f) for f in item.files}
    visible = {w for w in written if not os.path.basename(w).startswith(".")}
    ignored = {w for w in visible if classify(Path(w)) == "ignore"}
    assert visible - ignored <= found | {str(Path(w).parent) for w in visible}

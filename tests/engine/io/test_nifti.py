"""NIfTI reader: canonical orientation, 4D/2D handling, scaling, limits and malformed files (real files)."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

from engine.config import ReadLimits
from engine.io.case import ReadError
from engine.io.nifti import nifti_slice_count, read_nifti, read_nifti_middle_slice

NIBABEL_DATA = Path(data_path)
SHIPPED = ["anatomical.nii", "example4d.nii.gz", "example_nifti2.nii.gz", "functional.nii", "standard.nii.gz"]
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _ras_axcodes(case_affine: np.ndarray) -> tuple[str, ...]:
    return tuple(nib.aff2axcodes(LPS_TO_RAS @ case_affine))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_images_come_out_canonical(name: str) -> None:
    path = NIBABEL_DATA / name
    case = read_nifti(path)
    img = nib.load(path)
    assert case.kind == "volume"
    assert case.affine is not None
    assert _ras_axcodes(case.affine) == ("L", "P", "S")  # column -> Left, row -> Posterior, slice -> Superior
    assert case.pixels.dtype.isnative
    # Oracle: nibabel's RAS canonical image, flipped to L and P and transposed to Z Y X.
    canonical = nib.as_closest_canonical(img)
    ras = np.asarray(canonical.dataobj)
    if ras.ndim > 3:
        ras = ras[..., 0]
    expected = ras[::-1, ::-1, :].transpose(2, 1, 0)
    np.testing.assert_array_equal(case.pixels, expected)
    assert case.shape == expected.shape
    zooms = canonical.header.get_zooms()[:3]
    np.testing.assert_allclose(case.spacing, zooms[::-1], rtol=1e-4)
    # Same voxel, same place: the corner voxel maps to the same patient point in both geometries.
    corner_ras = canonical.affine @ np.array([ras.shape[0] - 1, ras.shape[1] - 1, 0, 1.0])
    np.testing.assert_allclose(LPS_TO_RAS @ case.affine @ np.array([0, 0, 0, 1.0]), corner_ras, atol=1e-3)
    assert case.metadata["volumes_in_file"] == str(int(np.prod(img.shape[3:])))


def test_marker_voxel_lands_where_the_patient_is(tmp_path: Path) -> None:
    # Array axes: i -> Superior-to-Inferior (flipped S), j -> Right (flipped L), k -> Anterior (flipped P).
    shape = (6, 7, 8)
    affine = np.array(
        [
            [0.0, 2.0, 0.0, -10.0],  # x (R) from j, 2 mm
            [0.0, 0.0, 3.0, 20.0],  # y (A) from k, 3 mm
            [-1.5, 0.0, 0.0, 30.0],  # z (S) from i, 1.5 mm, pointing Inferior
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    data = np.zeros(shape, dtype=np.int16)
    marker = (1, 2, 5)
    data[marker] = 1000
    path = tmp_path / "oblique.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)

    case = read_nifti(path)
    assert case.shape == (6, 8, 7)  # Z (from i) Y (from k) X (from j)
    assert case.spacing == pytest.approx((1.5, 3.0, 2.0))
    assert case.affine is not None
    np.testing.assert_allclose(np.diag(case.affine)[:3], [2.0, 3.0, 1.5])  # positive: L, P, S
    z, y, x = np.unravel_index(np.argmax(case.pixels), case.shape)
    marker_ras = affine @ np.array([*marker, 1.0])
    np.testing.assert_allclose(LPS_TO_RAS @ case.affine @ np.array([x, y, z, 1.0]), marker_ras)
    # Marker is 2 voxels from the Right edge -> column 7-1-2 from the Left; slice 1 from the top.
    assert (z, y, x) == (6 - 1 - 1, 8 - 1 - 5, 7 - 1 - 2)


def test_4d_reads_first_volume_only(tmp_path: Path) -> None:
    data = np.stack([np.full((4, 5, 3), v, dtype=np.float32) for v in (7.0, 8.0, 9.0)], axis=-1)
    path = tmp_path / "four_d.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    case = read_nifti(path)
    assert case.kind == "volume"
    assert case.shape == (3, 5, 4)
    assert np.all(case.pixels == 7.0)
    assert case.metadata["volumes_in_file"] == "3"


# Voxel axes permuted and flipped: i runs Superior -> Inferior, j Anterior -> Posterior, k Left -> Right.
ODD_AFFINE = np.array([[0.0, 0.0, 0.8, 10.0], [0.0, -0.6, 0.0, 20.0], [-2.5, 0.0, 0.0, 30.0], [0, 0, 0, 1.0]])


@pytest.mark.parametrize(("shape", "affine"), [((6, 8, 9), np.diag([0.6, 0.8, 2.5, 1.0])), ((8, 7, 9), ODD_AFFINE)])
def test_middle_slice_equals_that_slice_of_the_volume(tmp_path: Path, shape: tuple[int, ...], affine) -> None:
    data = np.random.default_rng(0).integers(-1000, 2000, size=shape).astype(np.int16)
    path = tmp_path / "odd.nii"
    img = nib.Nifti1Image(data, affine)
    img.header["descrip"] = b"CT phantom"
    nib.save(img, path)
    volume = read_nifti(path)
    middle = read_nifti_middle_slice(path)
    slices = volume.pixels.shape[0]
    assert nifti_slice_count(path) == slices == (shape[0] if affine is ODD_AFFINE else shape[2])
    assert middle.kind == "image2d" and middle.pixels.dtype == volume.pixels.dtype
    np.testing.assert_array_equal(middle.pixels, volume.pixels[slices // 2])
    assert middle.spacing == pytest.approx(volume.spacing[1:])  # row, col
    assert (middle.modality, middle.intensity, middle.metadata) == ("CT", "raw", volume.metadata)


def test_middle_slice_of_a_4d_file_comes_from_the_first_volume(tmp_path: Path) -> None:
    data = np.random.default_rng(1).random((6, 5, 7, 3)).astype(np.float32)
    path = tmp_path / "four_d.nii"
    nib.save(nib.Nifti1Image(data, ODD_AFFINE), path)
    middle = read_nifti_middle_slice(path)
    np.testing.assert_array_equal(middle.pixels, read_nifti(path).pixels[6 // 2])
    assert middle.metadata["volumes_in_file"] == "3"


@pytest.mark.parametrize("shape", [(20, 30), (20, 30, 1)])
def test_single_slice_is_image2d(tmp_path: Path, shape: tuple[int, ...]) -> None:
    data = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([0.5, 0.7, 2.0, 1.0])), path)
    case = read_nifti(path)
    assert case.kind == "image2d"
    assert case.shape == (30, 20)  # rows (from j) by columns (from i)
    assert case.spacing == pytest.approx((0.7, 0.5))
    plane = data.reshape(20, 30)
    np.testing.assert_array_equal(case.pixels, plane[::-1, ::-1].T)  # RAS -> LP flips


def test_scl_slope_and_inter_are_applied(tmp_path: Path) -> None:
    raw = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(2.0, -10.0)
    path = tmp_path / "scaled.nii"
    nib.save(img, path)
    case = read_nifti(path)
    expected = (raw * 2.0 - 10.0)[::-1, ::-1, :].transpose(2, 1, 0)
    np.testing.assert_allclose(case.pixels, expected)


def test_modality_from_description(tmp_path: Path) -> None:
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4))
    img.header["descrip"] = b"abdomen CT portal venous"
    nib.save(img, tmp_path / "ct.nii.gz")
    img.header["descrip"] = b"phantom"
    nib.save(img, tmp_path / "other.nii.gz")
    ct = read_nifti(tmp_path / "ct.nii.gz")
    assert ct.modality == "CT"
    assert ct.intensity == "raw"  # NIfTI never claims Hounsfield units
    assert read_nifti(tmp_path / "other.nii.gz").modality == "OT"


def test_shared_ct_nifti(shared_data: Path) -> None:
    path = shared_data / "formats" / "ct" / "totalsegmentator" / "example_ct.nii.gz"
    case = read_nifti(path)
    assert case.kind == "volume"
    assert case.shape == (112, 101, 122)
    assert case.spacing == pytest.approx((3.0, 3.0, 3.0))
    assert _ras_axcodes(case.affine) == ("L", "P", "S")


def _write_header_only(path: Path, shape: tuple[int, ...]) -> None:
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape(shape)
    header.set_qform(np.eye(4), code=1)
    header["vox_offset"] = 352
    with path.open("wb") as f:
        f.write(header.binaryblock + b"\x00" * 4 + b"\x00" * 1024)


def test_header_claiming_1e12_voxels_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.nii"
    _write_header_only(path, (10_000, 10_000, 10_000))
    with pytest.raises(ReadError, match="exceeds the limit") as err:
        read_nifti(path)
    assert "\n" not in str(err.value)


def test_limits_count_first_volume_and_volumes(tmp_path: Path) -> None:
    path = tmp_path / "many.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 5), np.int16), np.eye(4)), path)
    with pytest.raises(ReadError, match="volumes"):
        read_nifti(path, ReadLimits(max_frames=4))
    with pytest.raises(ReadError, match="voxels"):
        read_nifti(path, ReadLimits(max_voxels=63))
    with pytest.raises(ReadError, match="bytes"):
        read_nifti(path, ReadLimits(max_decompressed_bytes=127))  # 64 voxels x 2 bytes
    assert read_nifti(path, ReadLimits(max_voxels=64, max_frames=5, max_decompressed_bytes=128)).shape == (4, 4, 4)


def test_random_bytes_and_truncated_files_raise_read_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    random_file = tmp_path / "random.nii.gz"
    random_file.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    valid = tmp_path / "valid.nii.gz"
    nib.save(nib.Nifti1Image(rng.integers(0, 1000, (32, 32, 32)).astype(np.int16), np.eye(4)), valid)
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(valid.read_bytes()[: valid.stat().st_size // 2])
    short_plain = tmp_path / "short.nii"
    short_plain.write_bytes(gzip.decompress(valid.read_bytes())[:5000])
    empty = tmp_path / "empty.nii"
    empty.write_bytes(b"")
    for path in (random_file, truncated, short_plain, empty):
        with pytest.raises(ReadError) as err:
            read_nifti(path)
        assert str(err.value) and "\n" not in str(err.value), path

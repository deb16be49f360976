"""NIfTI-1/2 volumes (``.nii``, ``.nii.gz``) -> Case, via nibabel.

- Header dimensions are checked against ``ReadLimits`` before any voxel is read.
- Voxels are reoriented (axis flips and permutations only, no resampling) to the canonical orientation of
  ``engine.io.case``: pixels ``Z Y X`` with column -> Left, row -> Posterior, slice -> Superior, and ``affine``
  mapping (column, row, slice) to LPS millimetres (NIfTI itself is RAS).
- 4D (and higher) files: the first volume only; ``metadata["volumes_in_file"]`` says how many there were.
- A single-slice file becomes an ``image2d`` case.
- ``read_nifti_middle_slice`` reads the middle axial slice alone (a quick preview of a big ``.nii``).
- scl_slope / scl_inter are applied (nibabel's data proxy does it).
- ``modality`` is ``"OT"`` unless the header description names CT or MR, and ``intensity`` is always ``"raw"``:
  a NIfTI does not state that its values are Hounsfield units, so CT NIfTIs are percentile-scaled by
  preprocessing like any other non-HU case.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations

from engine.config import DEFAULT_LIMITS, ReadLimits
from engine.io.case import Case, ReadError
from engine.io.fingerprint import file_fingerprint

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
CANONICAL_AXCODES = ("L", "P", "S")  # nibabel array axes (i=column, j=row, k=slice)
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_MODALITY_WORDS = (("CT", re.compile(r"\bCT\b", re.I)), ("MR", re.compile(r"\b(MR|MRI)\b", re.I)))


def is_nifti_name(path: Path) -> bool:
    """True for ``.nii`` and ``.nii.gz`` file names."""
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _load_header(path: Path) -> nib.Nifti1Image | nib.Nifti2Image:
    try:
        img = nib.load(path)  # header only: voxels stay on disk behind img.dataobj
    except Exception as exc:  # noqa: BLE001 (nibabel and gzip raise many types for bad files)
        raise ReadError(f"not a readable NIfTI file ({_one_line(exc)})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise ReadError(f"not a NIfTI image ({type(img).__name__})")
    return img


def _check_limits(shape: tuple[int, ...], itemsize: int, limits: ReadLimits) -> None:
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise ReadError(f"NIfTI header gives an invalid shape {shape}")
    voxels = math.prod(shape[:3])
    if voxels > limits.max_voxels:
        raise ReadError(f"NIfTI volume of {voxels} voxels {shape[:3]} exceeds the limit of {limits.max_voxels}")
    if voxels * itemsize > limits.max_decompressed_bytes:
        raise ReadError(
            f"NIfTI volume of {voxels * itemsize} bytes exceeds the limit of {limits.max_decompressed_bytes}"
        )
    volumes = math.prod(shape[3:])
    if volumes > limits.max_frames:
        raise ReadError(f"NIfTI file of {volumes} volumes exceeds the limit of {limits.max_frames}")


def _modality(description: str) -> str:
    for code, pattern in _MODALITY_WORDS:
        if pattern.search(description):
            return code
    return "OT"


def to_canonical(data: np.ndarray, affine_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip/permute ``data`` (i j k, nibabel order) to L P S axes; returns (pixels Z Y X, affine in LPS)."""
    current = orientations.io_orientation(affine_ras)
    transform = orientations.ornt_transform(current, orientations.axcodes2ornt(CANONICAL_AXCODES))
    reoriented = orientations.apply_orientation(data, transform)  # i j k -> column(L) row(P) slice(S)
    affine = affine_ras @ orientations.inv_ornt_aff(transform, data.shape)
    pixels = np.ascontiguousarray(reoriented.transpose(2, 1, 0))  # Z Y X
    return pixels, RAS_TO_LPS @ affine


def _open_checked(path: Path, limits: ReadLimits) -> tuple[nib.Nifti1Image, tuple[int, ...], np.ndarray]:
    """Header-only open of a NIfTI file: (image proxy, data shape, RAS affine), refused on limits or a bad affine."""
    if path.stat().st_size == 0:
        raise ReadError("empty file")
    img = _load_header(path)
    shape = tuple(int(s) for s in img.header.get_data_shape())
    _check_limits(shape, img.header.get_data_dtype().itemsize, limits)
    affine_ras = img.affine
    if affine_ras is None or not np.all(np.isfinite(affine_ras)):
        raise ReadError("NIfTI header has no usable affine")
    return img, shape, affine_ras


def _read_voxels(img: nib.Nifti1Image, key: tuple[slice | int, ...]) -> np.ndarray:
    """The voxels ``img.dataobj[key]`` (only those bytes are read), native byte order, at least 3 axes."""
    try:
        data = np.asarray(img.dataobj[key])
    except Exception as exc:  # noqa: BLE001 (truncated gzip, short file, bad dtype, ...)
        raise ReadError(f"cannot read NIfTI voxels ({_one_line(exc)})") from None
    if data.dtype.fields is not None:
        raise ReadError(f"unsupported NIfTI data type {data.dtype}")
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))  # big-endian files -> native byte order
    while data.ndim < 3:
        data = data[..., None]
    return data


def read_nifti(path: Path | str, limits: ReadLimits = DEFAULT_LIMITS) -> Case:
    """Read a NIfTI file as a ``volume`` Case in canonical orientation (``image2d`` for a single slice)."""
    path = Path(path)
    img, shape, affine_ras = _open_checked(path, limits)
    header = img.header
    volumes = math.prod(shape[3:])
    first = (slice(None),) * 3 + (0,) * (len(shape) - 3)  # only the first volume of a 4D file is read
    data = _read_voxels(img, first[: len(shape)])
    pixels, affine = to_canonical(data, affine_ras)
    spacing_xyz = np.linalg.norm(affine[:3, :3], axis=0)  # mm per column, row, slice
    common = _case_fields(path, header, volumes, pixels.dtype)
    flat_axes = [axis for axis in range(3) if pixels.shape[axis] == 1]
    if flat_axes:  # one slice: a 2D image, rows and columns kept in canonical order
        kept = [axis for axis in range(3) if axis != flat_axes[0]]
        spacing = tuple(float(spacing_xyz[2 - axis]) for axis in kept)
        image = np.squeeze(pixels, axis=flat_axes[0])
        return Case(pixels=image, kind="image2d", spacing=spacing, **common)
    spacing = (float(spacing_xyz[2]), float(spacing_xyz[1]), float(spacing_xyz[0]))  # Z Y X
    return Case(pixels=pixels, kind="volume", spacing=spacing, affine=affine, **common)


def nifti_slice_count(path: Path | str) -> int:
    """Number of axial (Superior) slices of a NIfTI file, from its header alone (1 for a 2D file)."""
    img = _load_header(Path(path))
    shape = img.header.get_data_shape()
    axis = _superior_axis(img.affine)
    return int(shape[axis]) if axis < len(shape) else 1


def read_nifti_middle_slice(path: Path | str, limits: ReadLimits = DEFAULT_LIMITS) -> Case:
    """The middle axial slice of a NIfTI file alone, as an ``image2d`` Case equal to ``read_nifti(path).pixels[Z // 2]``
    (first volume of a 4D file). From an uncompressed ``.nii`` only that slice's bytes are read (a quick preview)."""
    path = Path(path)
    img, shape, affine_ras = _open_checked(path, limits)
    header = img.header
    axis = _superior_axis(affine_ras)
    if axis >= len(shape):
        raise ReadError(f"NIfTI file of shape {shape} has no axial slices")
    count = shape[axis]
    flipped = orientations.io_orientation(affine_ras)[axis, 1] < 0  # voxel axis runs Superior -> Inferior
    index = count - 1 - count // 2 if flipped else count // 2  # canonical slice Z // 2
    key: list[slice | int] = [slice(None)] * 3 + [0] * (len(shape) - 3)
    key[axis] = slice(index, index + 1)  # one slice kept as a length-1 axis: to_canonical applies unchanged
    data = _read_voxels(img, tuple(key[: len(shape)]))
    pixels, affine = to_canonical(data, affine_ras)  # 1 Y X
    spacing_xyz = np.linalg.norm(affine[:3, :3], axis=0)  # mm per column, row, slice
    return Case(
        pixels=np.ascontiguousarray(pixels[0]),
        kind="image2d",
        spacing=(float(spacing_xyz[1]), float(spacing_xyz[0])),  # row, col
        **_case_fields(path, header, math.prod(shape[3:]), pixels.dtype),
    )


def _superior_axis(affine_ras: np.ndarray) -> int:
    """The voxel axis (0 i, 1 j, 2 k) that runs along Superior/Inferior (3 when none does)."""
    ornt = orientations.io_orientation(affine_ras)
    matches = [axis for axis in range(len(ornt)) if ornt[axis, 0] == 2]
    return matches[0] if matches else 3


def _case_fields(path: Path, header: nib.Nifti1Header, volumes: int, dtype: np.dtype) -> dict:
    """The Case fields other than pixels, kind, spacing and affine."""
    description = _header_text(header, "descrip")
    metadata = {
        "format": "nifti",
        "description": description,
        "volumes_in_file": str(volumes),
        "dtype": str(dtype),
    }
    return dict(
        modality=_modality(description),
        source_files=[path],
        fingerprint=file_fingerprint(path),
        intensity="raw",
        metadata=metadata,
        uid=str(path.resolve()),
    )


def _header_text(header: nib.Nifti1Header, field: str) -> str:
    try:
        raw = header[field].item()
    except (KeyError, ValueError):
        return ""
    text = raw.decode("latin-1", "replace") if isinstance(raw, bytes) else str(raw)
    return text.split("\x00", 1)[0].strip()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]

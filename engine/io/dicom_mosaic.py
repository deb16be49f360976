"""Siemens mosaic: one image holding a whole volume's slices as tiles, geometry in the private CSA header.

Unpacking and the position fix of the first tile come from nibabel's ``nicom`` (``csareader`` parses the CSA
header: number of tiles, slice normal; ``MosaicWrapper`` rearranges the tiles into slices in spatial order).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from engine.io.case import ReadError
from engine.io.dicom_headers import one_line

with warnings.catch_warnings():  # nibabel warns at import that its DICOM readers are experimental
    warnings.simplefilter("ignore", UserWarning)
    from nibabel.nicom import csareader, dicomwrappers


def mosaic_slice_count(header: Dataset) -> int:
    """Number of slices tiled in the mosaic (CSA ``NumberOfImagesInMosaic``)."""
    try:
        n = csareader.get_n_mosaic(csareader.get_csa_header(header, "image"))
    except Exception as exc:  # malformed private header
        raise ReadError(f"unreadable Siemens CSA header ({type(exc).__name__})") from exc
    if not n:
        raise ReadError("mosaic without NumberOfImagesInMosaic in its CSA header")
    return int(n)


def read_mosaic(path: Path, header: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Stored values ``Z Y X`` of the mosaic's slices and the (column, row, slice) -> LPS affine."""
    ds = header if "PixelData" in header else pydicom.dcmread(path, force=True)
    try:
        wrapper = dicomwrappers.MosaicWrapper(ds, csareader.get_csa_header(ds, "image"))
        data = wrapper.get_unscaled_data()  # rows cols slices
        nib_affine = wrapper.affine  # (row, column, slice) -> LPS
    except ReadError:
        raise
    except Exception as exc:  # decoder or CSA problems
        raise ReadError(f"cannot unpack Siemens mosaic ({one_line(exc)})") from exc
    affine = nib_affine.copy()
    affine[:, [0, 1]] = nib_affine[:, [1, 0]]  # engine convention: (column, row, slice)
    return np.ascontiguousarray(np.transpose(data, (2, 0, 1))), affine  # Z Y X

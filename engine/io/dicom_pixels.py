"""Pixel data: refuse oversized headers, decode (all or a few frames), and map to displayable values.

Decoding goes through pydicom's pluggable decoders (pylibjpeg, openjpeg, pyjpegls, gdcm handle JPEG baseline /
lossless, JPEG 2000, JPEG-LS and RLE). After decoding: PALETTE COLOR -> RGB, YBR -> RGB (pydicom), MONOCHROME1
inverted so that higher always means brighter, RescaleSlope/Intercept applied per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, iter_pixels
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from engine.config import ReadLimits
from engine.io.case import ReadError
from engine.io.dicom_headers import number_of_frames, one_line

_NATIVE_LITTLE_ENDIAN = {ImplicitVRLittleEndian, ExplicitVRLittleEndian}


def _no_gdcm_for_jpeg2000() -> None:
    """gdcm aborts the whole process (an uncaught C++ exception, SIGABRT) on JPEG 2000 data whose component
    count disagrees with SamplesPerPixel; openjpeg (pylibjpeg, Pillow) decodes the same files or raises. So gdcm
    is not tried for JPEG 2000 where another decoder is installed (it stays the decoder of lossless JPEG)."""
    from pydicom.pixels.decoders import JPEG2000Decoder, JPEG2000LosslessDecoder

    for decoder in (JPEG2000Decoder, JPEG2000LosslessDecoder):
        if "gdcm" in decoder.available_plugins and len(decoder.available_plugins) > 1:
            decoder.remove_plugin("gdcm")


_no_gdcm_for_jpeg2000()
_PIXEL_KEYWORDS = {0x7FE00010, 0x7FE00008, 0x7FE00009}  # PixelData, FloatPixelData, DoubleFloatPixelData


def check_limits(ds: Dataset, n_files: int, limits: ReadLimits, frames_used: int | None = None) -> None:
    """Raise ``ReadError`` when the header claims more than the limits allow (nothing decoded yet)."""
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    frames = number_of_frames(ds)
    samples = int(ds.get("SamplesPerPixel") or 1)
    bytes_per_sample = max(1, int(ds.get("BitsAllocated") or 8) // 8)
    if rows <= 0 or cols <= 0:
        raise ReadError(f"no image size in header (Rows={rows}, Columns={cols})")
    if frames > limits.max_frames:
        raise ReadError(f"refused: {frames} frames exceed the limit of {limits.max_frames}")
    if rows * cols > limits.max_image_pixels:
        raise ReadError(f"refused: {rows}x{cols} image exceeds the limit of {limits.max_image_pixels} pixels")
    bits = int(ds.get("BitsAllocated") or 8)
    if bits not in (1, 8, 16, 32, 64) or (bits == 64 and _is_compressed(ds)):
        raise ReadError(f"refused: BitsAllocated {bits} is not a valid sample size for this pixel data")
    frame_bytes = rows * cols * samples * bytes_per_sample
    if frame_bytes > limits.max_frame_bytes:
        raise ReadError(f"refused: one {rows}x{cols}x{samples} frame decodes to {frame_bytes} bytes"
                        f" (limit {limits.max_frame_bytes})")
    decoded_frames = frames if frames_used is None else min(frames, frames_used)
    voxels = rows * cols * decoded_frames * n_files
    if voxels > limits.max_voxels:
        raise ReadError(
            f"refused: header claims {rows}x{cols}x{decoded_frames} frames x {n_files} files = {voxels} voxels"
            f" > limit {limits.max_voxels}"
        )
    decoded_bytes = rows * cols * decoded_frames * n_files * samples * bytes_per_sample
    if decoded_bytes > limits.max_decompressed_bytes:
        raise ReadError(f"refused: {decoded_bytes} decoded bytes exceed the limit {limits.max_decompressed_bytes}")


JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"


def _is_compressed(ds: Dataset) -> bool:
    """True for encapsulated (compressed) transfer syntaxes (where gdcm aborts on 64-bit samples)."""
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    return bool(syntax) and syntax not in {str(u) for u in (*_NATIVE_LITTLE_ENDIAN, ExplicitVRBigEndian)} \
        and syntax != "1.2.840.10008.1.2.1.99"  # deflated: native pixels after inflating


def refuse_unsupported_codec(header: Dataset) -> None:
    """Raise ReadError for syntaxes no shipped decoder handles (12-bit JPEG Extended needs GPL libjpeg)."""
    syntax = str(getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", ""))
    if syntax == JPEG_EXTENDED and int(header.get("BitsStored", 8)) > 8:
        raise ReadError(
            "unsupported codec: 12-bit JPEG Extended (only the GPL pylibjpeg-libjpeg decodes it; not shipped)"
        )


def decode(path: Path, header: Dataset, frame_indices: Sequence[int] | None = None) -> np.ndarray:
    """Decoded frames ``F H W [C]`` of one file (every frame, or only ``frame_indices``), colour as RGB."""
    n_frames = number_of_frames(header)
    refuse_unsupported_codec(header)
    try:
        if frame_indices is not None and n_frames > 1:
            frames = _decode_some(path, header, [int(i) for i in frame_indices])
        else:
            ds = _with_pixels(path, header)
            _check_native_length(ds, n_frames)
            native = _native_grey_frames(ds, n_frames)
            frames = native if native is not None else _as_frames(ds.pixel_array, n_frames, header)
    except ReadError:
        raise
    except Exception as exc:  # decoders raise many types for broken data
        raise ReadError(f"cannot decode pixel data ({one_line(exc)})") from exc
    if str(header.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
        frames = apply_color_lut(frames, header)
    return frames.astype(frames.dtype.newbyteorder("="), copy=False)  # big-endian files -> native


def _decode_some(path: Path, header: Dataset, indices: list[int]) -> np.ndarray:
    """Decode only the listed frames (pydicom reads just those frames' bytes where the syntax allows)."""
    unique = sorted(set(indices))
    try:
        decoded = dict(zip(unique, iter_pixels(path, indices=unique)))
    except Exception:  # files without preamble/meta: fall back to the dataset path
        decoded = dict(zip(unique, iter_pixels(_with_pixels(path, header), indices=unique)))
    return np.stack([decoded[i] for i in indices])


def _with_pixels(path: Path, header: Dataset) -> Dataset:
    """A dataset holding (or deferring) the pixel data, with a TransferSyntaxUID pydicom can decode."""
    ds = header if _PIXEL_KEYWORDS & set(header.keys()) else pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return ds


def _check_native_length(ds: Dataset, n_frames: int) -> None:
    """Uncompressed pixel data must be as long as Rows x Columns x samples x frames says (a wrong Rows would
    otherwise be read silently as a smaller image, or the rest of the data as extra frames)."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    bits = int(ds.get("BitsAllocated") or 0)
    if syntax not in (*_NATIVE_LITTLE_ENDIAN, ExplicitVRBigEndian) or bits % 8 or "PixelData" not in ds:
        return
    expected = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel") or 1) * n_frames * bits // 8
    actual = len(ds.PixelData)
    if actual > expected + 1 and actual >= expected + int(ds.Rows) * int(ds.Columns) * bits // 8 // 2:
        raise ReadError(f"pixel data holds {actual} bytes but the header declares {expected}"
                        f" (Rows={ds.Rows}, Columns={ds.Columns}, frames={n_frames}): inconsistent header")


def _native_grey_frames(ds: Dataset, n_frames: int) -> np.ndarray | None:
    """Fast path for uncompressed little-endian greyscale: the bytes viewed as ``F H W`` (None: use pydicom).

    Only where pydicom would return the same values: no sign extension or byte swapping needed.
    """
    syntax = ds.file_meta.get("TransferSyntaxUID")
    bits, stored = int(ds.get("BitsAllocated") or 0), int(ds.get("BitsStored") or 0)
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    if syntax not in _NATIVE_LITTLE_ENDIAN or int(ds.get("SamplesPerPixel") or 1) != 1:
        return None
    if bits not in (8, 16, 32) or (signed and stored != bits) or "PixelData" not in ds:
        return None
    rows, cols = int(ds.Rows), int(ds.Columns)
    count = n_frames * rows * cols
    raw = ds.PixelData
    if len(raw) < count * bits // 8:
        return None  # pydicom gives the detailed reason
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    return np.frombuffer(raw, dtype=dtype, count=count).reshape(n_frames, rows, cols).copy()


def _as_frames(arr: np.ndarray, n_frames: int, header: Dataset) -> np.ndarray:
    """pydicom's array (H W, H W C, F H W or F H W C) as ``F H W [C]``."""
    samples = int(header.get("SamplesPerPixel") or 1)
    single_frame_ndim = 2 if samples == 1 else 3
    return arr[None] if arr.ndim == single_frame_ndim else arr


def invert_monochrome1(frames: np.ndarray, header: Dataset) -> np.ndarray:
    """MONOCHROME1 (white = low values) flipped over the stored value range so higher means brighter."""
    if str(header.get("PhotometricInterpretation", "")).upper() != "MONOCHROME1":
        return frames
    bits = int(header.get("BitsStored") or header.get("BitsAllocated") or 16)
    if int(header.get("PixelRepresentation") or 0) == 1:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2**bits - 1
    return ((lo + hi) - frames.astype(np.int64)).astype(np.int32)


def rescale_params(header: Dataset, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame RescaleSlope and RescaleIntercept (functional groups first, then the top level)."""
    slopes = np.full(n_frames, _float(header.get("RescaleSlope"), 1.0))
    intercepts = np.full(n_frames, _float(header.get("RescaleIntercept"), 0.0))
    shared = _functional_item(header.get("SharedFunctionalGroupsSequence"), 0, "PixelValueTransformationSequence")
    if shared is not None:
        slopes[:] = _float(shared.get("RescaleSlope"), 1.0)
        intercepts[:] = _float(shared.get("RescaleIntercept"), 0.0)
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    for i in range(min(n_frames, len(per_frame or []))):
        item = _functional_item(per_frame, i, "PixelValueTransformationSequence")
        if item is not None:
            slopes[i] = _float(item.get("RescaleSlope"), 1.0)
            intercepts[i] = _float(item.get("RescaleIntercept"), 0.0)
    return slopes, intercepts


def apply_rescale(frames: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray) -> np.ndarray:
    """``frames * slope + intercept`` per frame; int16 when that is exact and fits, else float32."""
    if np.all(slopes == 1) and np.all(intercepts == 0) and frames.dtype.itemsize <= 2:
        return frames
    exact = np.all(slopes == np.round(slopes)) and np.all(intercepts == np.round(intercepts))
    if exact:
        out = frames.astype(np.int64) * slopes.astype(np.int64)[:, None, None]
        out += intercepts.astype(np.int64)[:, None, None]
        if out.size == 0 or (out.min() >= np.iinfo(np.int16).min and out.max() <= np.iinfo(np.int16).max):
            return out.astype(np.int16)
        return out.astype(np.float32)
    out = frames.astype(np.float32)
    out *= slopes.astype(np.float32)[:, None, None]
    out += intercepts.astype(np.float32)[:, None, None]
    return out


def grey_values(frames: np.ndarray, header: Dataset, frame_ids: Sequence[int] | None = None) -> np.ndarray:
    """Grey frames ``F H W`` after MONOCHROME1 inversion and rescale (``frame_ids``: source frame numbers)."""
    n = number_of_frames(header)
    slopes, intercepts = rescale_params(header, n)
    ids = np.arange(len(frames)) if frame_ids is None else np.asarray(frame_ids)
    ids = np.clip(ids, 0, n - 1)
    return apply_rescale(invert_monochrome1(frames, header), slopes[ids], intercepts[ids])


def _functional_item(sequence: Sequence[Dataset] | None, index: int, macro: str) -> Dataset | None:
    if not sequence or index >= len(sequence):
        return None
    inner = sequence[index].get(macro)
    return inner[0] if inner else None


def _float(value: object, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default

"""A seeded generator of malformed inputs for the indexer, and the check that every input was accounted for.

``generate(folder, n, seed)`` writes ``n`` inputs (the same bytes for the same seed) made from small valid seeds
of every format the readers take — PNG, JPEG, TIFF, BMP, NIfTI (.nii, .nii.gz), MJPG AVI, DICOM of many transfer
syntaxes (pydicom's test files), DICOMDIR — by mutations: truncation, bit flips, zeroed blocks, random bytes,
empty files, headers declaring huge sizes (JPEG / PNG / NIfTI / DICOM bombs, a gzip bomb, a deflate TIFF bomb),
inconsistent DICOM headers (wrong Rows, 64-bit samples, huge NumberOfFrames), DICOM series with a truncated
slice or NaN positions, one-pixel-wide images, one-frame videos; plus the special cases (a FIFO named ``*.dcm``,
a FIFO without extension, a link to ``/dev/zero``, a link loop, a dangling link, a file name that is not
UTF-8). ``unaccounted(inputs, library)`` lists the inputs that are neither a case's source file nor under a
recorded failure.

Used by ``tests/engine/robustness/test_fuzz.py`` (a fast subset) and ``python -m benchmarks.robustness``.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np

DICOM_SEEDS = (
    "CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
    "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm", "MR_small_bigendian.dcm", "SC_rgb_small_odd.dcm",
    "SC_ybr_full_422_uncompressed.dcm", "emri_small.dcm", "JPEG2000_UNC.dcm",
)
SPECIAL_KINDS = ("fifo.dcm", "fifo", "devzero.dcm", "loop", "dangling.png", "non-utf8")


class _Seeds:
    """Small valid files of every format, made once per generator (bytes and a suffix)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.files: list[tuple[str, bytes]] = []
        grey = (rng.random((64, 72)) * 255).astype(np.uint8)
        colour = (rng.random((48, 40, 3)) * 255).astype(np.uint8)
        for suffix, image in ((".png", grey), (".jpg", grey), (".jpg", colour), (".tif", grey), (".bmp", colour),
                              (".png", (grey.astype(np.uint16) * 200))):
            ok, encoded = cv2.imencode(suffix, image)
            assert ok
            self.files.append((suffix, encoded.tobytes()))
        self.files.append((".nii", _nifti_bytes(rng.integers(0, 1000, (20, 24, 12)).astype(np.int16))))
        self.files.append((".nii.gz", gzip.compress(self.files[-1][1], 1, mtime=0)))
        self.files.append((".avi", _avi_bytes(rng, 12)))
        self.dicoms = [(".dcm", p.read_bytes()) for p in _pydicom_files(DICOM_SEEDS)]
        self.files += self.dicoms
        self._bombs: dict[str, bytes] = {}

    def bomb(self, kind: str) -> bytes:
        """Small files that decode (or inflate) to gigabytes; made once."""
        if kind not in self._bombs:
            self._bombs[kind] = _BOMBS[kind]()
        return self._bombs[kind]


def _nifti_bytes(data: np.ndarray) -> bytes:
    image = nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.0, 1.0]))
    return image.to_bytes()


def _avi_bytes(rng: np.random.Generator, frames: int, size: tuple[int, int] = (40, 32)) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "v.avi")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, size, True)
        for _ in range(frames):
            writer.write((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8))
        writer.release()
        return Path(path).read_bytes()


def _pydicom_files(names: tuple[str, ...]) -> list[Path]:
    from pydicom.data import get_testdata_file

    found = [get_testdata_file(n) for n in names]
    return [Path(p) for p in found if p]


def _jpeg_bomb() -> bytes:
    ok, encoded = cv2.imencode(".jpg", np.full((8, 8), 128, np.uint8))
    data = bytearray(encoded.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 30000, 30000)
    return bytes(data)


def _png_bomb() -> bytes:
    ok, encoded = cv2.imencode(".png", np.zeros((8, 8), np.uint8))
    data = bytearray(encoded.tobytes())
    data[16:24] = struct.pack(">II", 20000, 20000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)  # a valid IHDR CRC
    return bytes(data)


def _tiff_bomb() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (20000, 20000)).save(buffer, format="TIFF", compression="tiff_adobe_deflate")
    return buffer.getvalue()


def _nifti_gzip_bomb() -> bytes:
    header = nib.Nifti1Header()
    header.set_data_shape((1024, 1024, 256))
    header.set_data_dtype(np.int16)
    raw = header.binaryblock + b"\0" * 4 + b"\0" * (1024 * 1024 * 256 * 2)
    return gzip.compress(raw, 9, mtime=0)


def _dicom_bomb() -> bytes:
    import pydicom

    ds = pydicom.dcmread(_pydicom_files(("MR_small_jpeg_ls_lossless.dcm",))[0])
    ds.Rows = ds.Columns = 20000
    return _dicom_bytes(ds)


_BOMBS: dict[str, Callable[[], bytes]] = {
    "jpeg": _jpeg_bomb, "png": _png_bomb, "tiff": _tiff_bomb, "nii.gz": _nifti_gzip_bomb, "dcm": _dicom_bomb,
}
_BOMB_SUFFIX = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif", "nii.gz": ".nii.gz", "dcm": ".dcm"}


def _dicom_bytes(ds) -> bytes:  # noqa: ANN001 (pydicom Dataset)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


def _dicom_edit(data: bytes, rnd: random.Random) -> bytes:
    """A DICOM whose header disagrees with its pixels (wrong Rows, 64-bit samples, huge frame count...)."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    edit = rnd.choice(("rows", "bits64", "bits_odd", "frames", "samples", "photometric", "columns0", "spacing"))
    if edit == "rows":
        ds.Rows = max(1, int(ds.get("Rows", 64)) // 2)
    elif edit == "bits64":
        ds.BitsAllocated = 64
    elif edit == "bits_odd":
        ds.BitsAllocated = 7
    elif edit == "frames":
        ds.NumberOfFrames = rnd.choice((0, 2, 1_000_000))
    elif edit == "samples":
        ds.SamplesPerPixel = 3 if int(ds.get("SamplesPerPixel", 1)) == 1 else 1
    elif edit == "photometric":
        ds.PhotometricInterpretation = rnd.choice(("PALETTE COLOR", "YBR_FULL", "MONOCHROME1", "BOGUS"))
    elif edit == "columns0":
        ds.Columns = 0
    else:
        ds.PixelSpacing = ["nan", "-1"]
    return _dicom_bytes(ds)


def _series(folder: Path, rnd: random.Random, index: int) -> list[Path]:
    """A small CT series of 8 slices with one defect: a truncated slice, NaN positions, or a wrong Rows."""
    import pydicom

    source = pydicom.dcmread(_pydicom_files(("CT_small.dcm",))[0])
    series = folder / f"series_{index:05d}"
    series.mkdir(parents=True, exist_ok=True)
    uid = f"1.2.826.0.1.3680043.8.498.{index + 1}"
    defect, bad = rnd.choice(("truncated", "nan", "rows")), rnd.randrange(8)
    paths = []
    for z in range(8):
        ds = source.copy()
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = f"{uid}.{z + 1}"
        ds.ImagePositionPatient = [0.0, 0.0, float(z) * 2.5]
        ds.InstanceNumber = z + 1
        if z == bad and defect == "nan":
            ds.ImagePositionPatient = ["nan", "nan", "nan"]
        data = _dicom_bytes(ds)
        if z == bad and defect == "truncated":
            data = data[: len(data) * 2 // 3]
        path = series / f"slice_{z:02d}.dcm"
        path.write_bytes(data)
        paths.append(path)
    if defect == "rows":
        ds = pydicom.dcmread(paths[bad])
        ds.Rows = int(ds.Rows) // 2
        paths[bad].write_bytes(_dicom_bytes(ds))
    return paths


def _mutate(data: bytes, rnd: random.Random) -> tuple[str, bytes]:
    how = rnd.choice(("truncate", "truncate", "flip", "flip", "zero", "head_only"))
    if how == "truncate":
        return how, data[: rnd.randrange(0, max(1, len(data)))]
    if how == "head_only":
        return how, data[: min(len(data), rnd.choice((16, 132, 300, 1024)))]
    buf = bytearray(data)
    if not buf:
        return how, data
    if how == "flip":
        for _ in range(rnd.randint(1, 32)):
            i = rnd.randrange(len(buf))
            buf[i] ^= 1 << rnd.randrange(8)
    else:
        start = rnd.randrange(len(buf))
        end = min(len(buf), start + rnd.randint(1, 512))
        buf[start:end] = bytes(end - start)
    return how, bytes(buf)


def _degenerate(rnd: random.Random, seeds: _Seeds) -> tuple[str, bytes]:
    kind = rnd.choice(("line.png", "column.png", "pixel.png", "one_frame.avi", "needle.nii"))
    if kind == "line.png":
        return ".png", cv2.imencode(".png", np.zeros((1, 300), np.uint8))[1].tobytes()
    if kind == "column.png":
        return ".png", cv2.imencode(".png", np.zeros((300, 1), np.uint8))[1].tobytes()
    if kind == "pixel.png":
        return ".png", cv2.imencode(".png", np.zeros((1, 1), np.uint8))[1].tobytes()
    if kind == "one_frame.avi":
        return ".avi", _avi_bytes(seeds.rng, 1)
    return ".nii", _nifti_bytes(np.zeros((1, 1, 600), np.int16))


def _special(folder: Path, kind: str) -> Path:
    if kind == "fifo.dcm":
        os.mkfifo(folder / "pipe.dcm")
        return folder / "pipe.dcm"
    if kind == "fifo":
        os.mkfifo(folder / "pipe")
        return folder / "pipe"
    if kind == "devzero.dcm":
        os.symlink("/dev/zero", folder / "zero.dcm")
        return folder / "zero.dcm"
    if kind == "loop":
        os.symlink(folder / "loop_b", folder / "loop_a")
        os.symlink(folder / "loop_a", folder / "loop_b")
        return folder / "loop_a"
    if kind == "dangling.png":
        os.symlink(folder / "nowhere.png", folder / "dangling.png")
        return folder / "dangling.png"
    name = Path(os.fsdecode(os.path.join(os.fsencode(folder), b"caf\xe9-\xff.png")))
    name.write_bytes(cv2.imencode(".png", np.full((32, 32), 7, np.uint8))[1].tobytes())
    return name


def generate(folder: Path, n: int, seed: int = 0, bombs: bool = True) -> list[Path]:
    """Write ``n`` (at least) malformed or odd inputs under ``folder``; returns their paths (series: every slice,
    special files: the link or FIFO). The same ``seed`` writes the same inputs."""
    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    seeds = _Seeds(np.random.default_rng(seed))
    inputs: list[Path] = []
    special = folder / "special"
    special.mkdir(exist_ok=True)
    for kind in SPECIAL_KINDS:
        inputs.append(_special(special, kind))
        if kind == "loop":
            inputs.append(special / "loop_b")
    if bombs:
        for kind, suffix in _BOMB_SUFFIX.items():
            path = folder / "bombs" / f"bomb_{kind.replace('.', '_')}{suffix}"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(seeds.bomb(kind))
            inputs.append(path)
    dicomdir = _pydicom_files(("DICOMDIR",))
    i = 0
    while len(inputs) < n:
        sub = folder / f"batch_{i // 500:03d}"
        sub.mkdir(exist_ok=True)
        roll = rnd.random()
        if roll < 0.02:
            inputs += _series(sub, rnd, i)
        elif roll < 0.04:
            suffix, data = _degenerate(rnd, seeds)
            path = sub / f"degenerate_{i:05d}{suffix}"
            path.write_bytes(data)
            inputs.append(path)
        elif roll < 0.10 and seeds.dicoms:
            path = sub / f"edited_{i:05d}.dcm"
            path.write_bytes(_dicom_edit(rnd.choice(seeds.dicoms)[1], rnd))
            inputs.append(path)
        elif roll < 0.11 and dicomdir:
            holder = sub / f"dicomdir_{i:05d}"
            holder.mkdir()
            _, data = _mutate(dicomdir[0].read_bytes(), rnd)
            (holder / "DICOMDIR").write_bytes(data)
            inputs.append(holder / "DICOMDIR")
        elif roll < 0.13:
            suffix = rnd.choice((".png", ".jpg", ".dcm", ".nii", ".avi", ".tif", ""))
            path = sub / f"noise_{i:05d}{suffix}"
            path.write_bytes(rnd.randbytes(rnd.choice((0, 1, 64, 4096))))
            inputs.append(path)
        else:
            suffix, data = rnd.choice(seeds.files)
            how, mutated = _mutate(data, rnd)
            name = f"{how}_{i:05d}{suffix}" if rnd.random() < 0.9 else f"{how}_{i:05d}"  # some without suffix
            path = sub / name
            path.write_bytes(mutated)
            inputs.append(path)
        i += 1
    return inputs


IGNORED_BY_DESIGN = ("",)  # (nothing generated is ignored by the scan)


def unaccounted(inputs: list[Path], case_files: set[str], failure_paths: set[str]) -> list[Path]:
    """Inputs that are neither a case's source file nor at or under a recorded failure's path (a series or a
    DICOMDIR failure names a folder)."""
    missing = []
    for path in inputs:
        text = str(path.absolute())
        if text in case_files or text in failure_paths:
            continue
        parents = {str(p) for p in path.absolute().parents}
        if parents & failure_paths or _referenced_by_dicomdir(path, failure_paths):
            continue
        missing.append(path)
    return missing


def _referenced_by_dicomdir(path: Path, failure_paths: set[str]) -> bool:
    return str(path.absolute().parent / "DICOMDIR") in failure_paths

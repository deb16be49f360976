"""DICOM video: MPEG-2 / H.264 / HEVC bitstreams encapsulated in Pixel Data (endoscopy, ultrasound cines).

pydicom cannot decode these transfer syntaxes; the bitstream is written to a temporary file and read by the
video-file reader (``engine.io.video``, OpenCV/FFmpeg), which samples ``limits.video_frames`` frames.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments
from pydicom.uid import UID, MPEGTransferSyntaxes

from engine.config import ReadLimits
from engine.io.case import Case, ReadError
from engine.io.video import read_video

_MPEG2 = {"1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.100.1", "1.2.840.10008.1.2.4.101",
          "1.2.840.10008.1.2.4.101.1"}
_HEVC = {"1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108"}


def is_encapsulated_video(header: Dataset) -> bool:
    """True when Pixel Data holds an MPEG-2, H.264 or HEVC bitstream."""
    syntax = getattr(header, "file_meta", Dataset()).get("TransferSyntaxUID")
    return syntax is not None and UID(str(syntax)) in MPEGTransferSyntaxes


def read_encapsulated_video(path: Path, header: Dataset, limits: ReadLimits) -> Case:
    """The video Case of the bitstream (pixels, fps, frame_count, frame_indices; metadata left to the caller)."""
    ds = header if "PixelData" in header else pydicom.dcmread(path, force=True)
    try:
        items = list(generate_fragments(ds.PixelData))  # the Basic Offset Table item, then the fragments
        bitstream = b"".join(items[1:])
    except Exception as exc:  # not encapsulated as the transfer syntax says
        raise ReadError(f"cannot extract the video bitstream ({type(exc).__name__})") from exc
    if not bitstream:
        raise ReadError("empty video bitstream")
    suffix = _suffix(str(ds.file_meta.TransferSyntaxUID), bitstream)
    with tempfile.TemporaryDirectory(prefix="m3ret-dicom-video-") as folder:
        stream_path = Path(folder) / f"stream{suffix}"
        stream_path.write_bytes(bitstream)
        return read_video(stream_path, limits)


def _suffix(syntax: str, bitstream: bytes) -> str:
    """File suffix telling FFmpeg what the bytes are (some writers store a whole MP4 container)."""
    if bitstream[4:8] == b"ftyp":
        return ".mp4"
    if syntax in _MPEG2:
        return ".m2v"
    return ".hevc" if syntax in _HEVC else ".h264"

"""Fingerprints: change with content, not with copies or order."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from engine.io.fingerprint import CHUNK, file_fingerprint, files_fingerprint


def test_file_fingerprint_follows_content(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 256, 3 * CHUNK, dtype=np.uint8).tobytes()
    a = tmp_path / "a.bin"
    a.write_bytes(data)
    b = tmp_path / "b.bin"
    shutil.copy(a, b)
    assert file_fingerprint(a) == file_fingerprint(b)
    for position in (0, len(data) - 1):  # a change in the head or the tail is seen
        changed = bytearray(data)
        changed[position] ^= 0xFF
        b.write_bytes(bytes(changed))
        assert file_fingerprint(a) != file_fingerprint(b)
    b.write_bytes(data + b"\x00")  # size
    assert file_fingerprint(a) != file_fingerprint(b)


def test_files_fingerprint_ignores_order(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        path = tmp_path / f"f{i}"
        path.write_bytes(bytes([i]) * 100)
        paths.append(path)
    assert files_fingerprint(paths) == files_fingerprint(paths[::-1])
    assert files_fingerprint(paths) != files_fingerprint(paths[:2])

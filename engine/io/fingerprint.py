"""Content fingerprints of source files, cheap enough for every file of a large archive (incremental indexing).

A fingerprint hashes the file size plus its first and last 64 KiB: it changes when a file is rewritten, without
reading whole multi-gigabyte volumes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

CHUNK = 64 * 1024


def _update_with_file(digest: "hashlib._Hash", path: Path) -> None:
    size = path.stat().st_size
    digest.update(str(size).encode())
    with path.open("rb") as f:
        digest.update(f.read(CHUNK))
        if size > CHUNK:
            f.seek(max(CHUNK, size - CHUNK))
            digest.update(f.read(CHUNK))


def file_fingerprint(path: Path | str) -> str:
    """sha1 hex digest of one file's size + first and last 64 KiB."""
    digest = hashlib.sha1()
    _update_with_file(digest, Path(path))
    return digest.hexdigest()


def files_fingerprint(paths: Iterable[Path | str]) -> str:
    """sha1 hex digest over several files (sorted by path, so the order they were found in does not matter)."""
    digest = hashlib.sha1()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode("utf-8", "surrogateescape"))
        _update_with_file(digest, path)
    return digest.hexdigest()

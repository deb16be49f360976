"""Shards: a deterministic cut of an archive's units, and one file of results per shard (written atomically).

The cut is made over *every* unit discovered under the indexed paths, ordered by the sha1 of the unit's key (a
DICOM series key or a file path) and cut every ``shard_units`` units, so the same archive is cut the same way on
every run and on every machine. A shard holds the units of its slice that still need work (the local indexer's
change detection decides which); it is named by a digest of the model id and of each of those units' key and
file stats (size, mtime), so a shard file is reused only for exactly the files and the model it was made from.

A shard file ``<digest>.npz`` holds the shard's case rows (JSON, ``engine.catalog.NewCase`` without thumbnails),
their float16 vectors ``[N, D]``, the thumbnails (concatenated PNG bytes + offsets) and the read failures. It is
written to a temporary name and moved into place (``os.replace``), so it either exists whole or not at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.catalog import FileState, NewCase
from engine.io.case import Failure
from engine.io.scan import SourceUnit

log = logging.getLogger(__name__)

SHARD_SUFFIX = ".npz"


@dataclass(frozen=True)
class Shard:
    """The units of one slice of the cut that need work, and the name of their results file."""

    number: int  # the slice's position in the cut (0-based)
    units: tuple[SourceUnit, ...]
    digest: str


@dataclass
class ShardResult:
    """What the pipeline made of one shard: cases (with thumbnails) and their vectors, failures."""

    unit_keys: list[str]
    cases: list[NewCase]
    vectors: np.ndarray  # N D float16
    failures: list[Failure]


def unit_order(unit: SourceUnit) -> str:
    """The sort key of the cut: sha1 of the unit key (spreads folders and kinds evenly over the shards)."""
    return hashlib.sha1(unit.key.encode("utf-8", "surrogateescape")).hexdigest()


def plan_shards(units: Sequence[SourceUnit], pending_keys: set[str], model_id: str, shard_units: int
                ) -> list[Shard]:
    """Cut ``units`` (every unit discovered) into slices of ``shard_units``; keep the slices with pending units."""
    if shard_units < 1:
        raise ValueError("shard_units must be >= 1")
    ordered = sorted(units, key=unit_order)
    shards = []
    for number, start in enumerate(range(0, len(ordered), shard_units)):
        members = tuple(u for u in ordered[start : start + shard_units] if u.key in pending_keys)
        if members:
            shards.append(Shard(number, members, shard_digest(members, model_id)))
    return shards


def shard_digest(units: Sequence[SourceUnit], model_id: str) -> str:
    """sha1 of the model id and, per unit, its reader, key and each file's path, size and mtime."""
    digest = hashlib.sha1(model_id.encode())
    for unit in units:
        digest.update(f"\0{unit.reader}\0{unit.key}".encode("utf-8", "surrogateescape"))
        for path in sorted(str(f) for f in unit.files):
            try:
                st = os.stat(path)
                state = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                state = "missing"
            digest.update(f"\0{path}\0{state}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def case_fields(case: NewCase) -> dict:
    """A case's catalog fields as plain JSON-able values (the thumbnail travels separately, as bytes)."""
    fields = dataclasses.asdict(case)
    fields.pop("thumbnail")
    return fields


def case_from_fields(fields: dict, thumbnail: bytes | None) -> NewCase:
    """The inverse of ``case_fields``."""
    return NewCase(**{**fields, "files": [FileState(**f) for f in fields["files"]]}, thumbnail=thumbnail)


def shard_path(folder: Path, digest: str) -> Path:
    return Path(folder) / f"{digest}{SHARD_SUFFIX}"


def write_shard(folder: Path, digest: str, result: ShardResult) -> Path:
    """Write ``result`` as ``<folder>/<digest>.npz`` atomically (temporary file, then ``os.replace``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = shard_path(folder, digest)
    rows = [case_fields(case) for case in result.cases]
    thumbs = [case.thumbnail or b"" for case in result.cases]
    offsets = np.cumsum([0] + [len(t) for t in thumbs]).astype(np.int64)  # N+1
    arrays = {
        "cases": np.array(json.dumps(rows)),
        "units": np.array(json.dumps(result.unit_keys)),
        "failures": np.array(json.dumps([[str(f.path), f.reason] for f in result.failures])),
        "vectors": np.asarray(result.vectors, dtype=np.float16),  # N D
        "thumbnails": np.frombuffer(b"".join(thumbs), dtype=np.uint8),
        "thumbnail_offsets": offsets,
    }
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # the rows hold patient identifiers
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def read_shard(path: Path) -> ShardResult | None:
    """Read a shard file; None (and the file removed) when it is damaged, so the shard is simply redone."""
    try:
        with np.load(path, allow_pickle=False) as data:
            rows = json.loads(str(data["cases"]))
            units = json.loads(str(data["units"]))
            failures = [Failure(Path(p), reason) for p, reason in json.loads(str(data["failures"]))]
            vectors = np.array(data["vectors"], dtype=np.float16)  # N D
            blob = data["thumbnails"].tobytes()
            offsets = data["thumbnail_offsets"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        log.warning("%s: unreadable shard file (%s); the shard is redone", path, exc)
        Path(path).unlink(missing_ok=True)
        return None
    cases = [case_from_fields(row, blob[offsets[i] : offsets[i + 1]] or None) for i, row in enumerate(rows)]
    if len(cases) != len(vectors):
        log.warning("%s: %d cases but %d vectors; the shard is redone", path, len(cases), len(vectors))
        Path(path).unlink(missing_ok=True)
        return None
    return ShardResult(units, cases, vectors, failures)

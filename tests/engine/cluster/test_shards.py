"""engine.cluster.shards: a deterministic cut, digests that follow the files and the model, atomic shard files."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np

from engine.catalog import FileState, NewCase
from engine.cluster.shards import ShardResult, plan_shards, read_shard, shard_digest, shard_path, write_shard
from engine.io.case import Failure
from engine.io.scan import SourceUnit


def _units(folder: Path, n: int) -> list[SourceUnit]:
    folder.mkdir(parents=True, exist_ok=True)
    units = []
    for i in range(n):
        path = folder / f"case_{i:03d}.png"
        path.write_bytes(bytes([i % 256]) * (100 + i))
        units.append(SourceUnit("image", (path,), str(path)))
    return units


def test_the_cut_does_not_depend_on_discovery_order_and_keeps_slices_of_pending_units(tmp_path: Path) -> None:
    units = _units(tmp_path, 23)
    keys = {u.key for u in units}
    shuffled = units[:]
    random.Random(3).shuffle(shuffled)
    first = plan_shards(units, keys, "model-a", 5)
    again = plan_shards(shuffled, keys, "model-a", 5)
    assert [(s.number, s.units, s.digest) for s in first] == [(s.number, s.units, s.digest) for s in again]
    assert [len(s.units) for s in first] == [5, 5, 5, 5, 3]
    assert sorted(u.key for s in first for u in s.units) == sorted(keys)

    # a later run where slices 0 and 2 were merged (their units unchanged): the other slices keep number and name
    done = {u.key for s in (first[0], first[2]) for u in s.units}
    later = plan_shards(shuffled, keys - done, "model-a", 5)
    assert [(s.number, s.digest) for s in later] == [(s.number, s.digest) for s in first if s.number not in (0, 2)]


def test_a_shard_digest_changes_with_a_file_or_the_model(tmp_path: Path) -> None:
    units = _units(tmp_path, 4)
    base = shard_digest(units, "model-a")
    assert shard_digest(units, "model-b") != base
    path = units[2].files[0]
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000_000))
    assert shard_digest(units, "model-a") != base
    path.unlink()
    assert shard_digest(units, "model-a") != base


def _result(tmp_path: Path) -> ShardResult:
    cases = []
    for i, thumbnail in enumerate((b"\x89PNG-one", None, b"\x89PNG-three")):
        path = tmp_path / f"x{i}.png"
        cases.append(NewCase(uid=f"uid{i}", kind="image2d", modality="XR", shape=[32, 32], fingerprint=f"f{i}",
                             reader="image", unit_key=str(path),
                             files=[FileState(str(path), 10 + i, 1.5 + i, f"sha{i}")], thumbnail=thumbnail,
                             patient_name="Doe^Jane" if i == 0 else None))
    vectors = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float16)
    return ShardResult([c.unit_key for c in cases], cases, vectors, [Failure(tmp_path / "bad.dcm", "truncated")])


def test_shard_file_round_trip(tmp_path: Path) -> None:
    result = _result(tmp_path)
    path = write_shard(tmp_path / "shards", "abc", result)
    assert path == shard_path(tmp_path / "shards", "abc") and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["abc.npz"]  # no temporary file left
    back = read_shard(path)
    assert back is not None
    assert back.cases == result.cases  # every field, the thumbnails (and a missing one) included
    assert back.unit_keys == result.unit_keys
    assert np.array_equal(back.vectors, result.vectors) and back.vectors.dtype == np.float16
    assert [(str(f.path), f.reason) for f in back.failures] == [(str(tmp_path / "bad.dcm"), "truncated")]


def test_a_damaged_shard_file_is_dropped_so_the_shard_is_redone(tmp_path: Path) -> None:
    path = write_shard(tmp_path, "abc", _result(tmp_path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert read_shard(path) is None
    assert not path.exists()

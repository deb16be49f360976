"""engine.cluster.indexer on a real 2-node local Ray cluster: the local indexer's library, a killed worker, re-runs.

The shared data's test split (a 40-case subset of mixed kinds; the whole split in one slow test) is indexed both
ways and compared case by case.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from engine.cluster.indexer import ClusterOptions, ClusterProgress, index_paths_on_ray
from engine.indexer import index_paths
from engine.library import Library
from tests.engine.cluster.conftest import ray_worker_processes
from tests.engine.conftest import copy_subset, shared_subset


@pytest.fixture(scope="module")
def subset_files(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cluster_subset")
    copy_subset(shared_data, shared_subset(shared_data), folder)
    return folder


def library_contents(library_dir: Path) -> dict[tuple[str, str], dict]:
    """Every case keyed by (unit key, uid): its catalog fields, files, thumbnail and vector; checks the index."""
    with Library.open(library_dir, create=False) as lib:
        records = lib.catalog.list_cases()
        assert set(lib.index.keys().tolist()) == {r.id for r in records}
        out = {}
        for r in records:
            key = (r.unit_key, r.uid)
            assert key not in out, f"case indexed twice: {key}"
            out[key] = dict(kind=r.kind, modality=r.modality, shape=r.shape, fingerprint=r.fingerprint,
                            description=r.description, reader=r.reader, files=sorted(r.source_paths),
                            thumbnail=r.thumbnail, vector=lib.catalog.embedding(r.id, lib.model_id))
        return out


def assert_same_library(ray_dir: Path, local_dir: Path) -> int:
    ray_cases, local_cases = library_contents(ray_dir), library_contents(local_dir)
    assert sorted(ray_cases) == sorted(local_cases)
    for key, local in local_cases.items():
        mine = ray_cases[key]
        assert {k: v for k, v in mine.items() if k != "vector"} == {k: v for k, v in local.items() if k != "vector"}
        cosine = float(mine["vector"] @ local["vector"]) / float(
            np.linalg.norm(mine["vector"]) * np.linalg.norm(local["vector"]))
        assert cosine >= 0.9999, (key, cosine)
    return len(local_cases)


def test_ray_builds_the_library_the_local_indexer_builds(ray_cluster: str, subset_files: Path, default_model: Path,
                                                         tmp_path: Path) -> None:
    with Library.open(tmp_path / "local", model_path=default_model) as lib:
        local = index_paths(lib, [subset_files], workers=0)
    with Library.open(tmp_path / "ray", model_path=default_model) as lib:
        report = index_paths_on_ray(lib, [subset_files], ClusterOptions(shard_units=8))
    assert report.n_failed == local.n_failed == 0
    assert report.n_added == local.n_added == 40
    assert report.shards_total == report.shards_computed == 5 and report.shards_reused == 0
    assert assert_same_library(tmp_path / "ray", tmp_path / "local") == 40
    assert not list((tmp_path / "ray" / "shards").iterdir())  # merged shard files are deleted

    with Library.open(tmp_path / "ray", model_path=default_model) as lib:  # nothing changed: no shard, no Ray job
        again = index_paths_on_ray(lib, [subset_files], ClusterOptions(shard_units=8))
    assert (again.shards_total, again.n_unchanged, again.n_embedded) == (0, 40, 0)


def test_a_killed_worker_costs_time_not_cases(ray_cluster: str, subset_files: Path, tiny_model: Path,
                                             tmp_path: Path) -> None:
    killed: list[int] = []

    def kill_the_embedding_actor(state: ClusterProgress) -> None:
        if state.stage == "indexing" and not killed and state.shards_done < state.shards_total:
            actors = ray_worker_processes("EmbedActor")
            assert actors, "no embedding actor process found"
            killed.append(actors[0].pid)
            os.kill(actors[0].pid, signal.SIGKILL)

    with Library.open(tmp_path / "lib", model_path=tiny_model) as lib:
        report = index_paths_on_ray(lib, [subset_files], ClusterOptions(shard_units=2),
                                    progress=kill_the_embedding_actor)
    assert killed, "the run ended before a worker could be killed"
    assert report.shards_computed == report.shards_total == 20 and report.shards_unfinished == 0
    assert report.n_added == 40 and report.n_failed == 0
    assert len(library_contents(tmp_path / "lib")) == 40  # every case once (duplicates are asserted inside)


def test_a_changed_file_is_redone_in_its_shard_only(ray_cluster: str, subset_files: Path, tiny_model: Path,
                                                    tmp_path: Path) -> None:
    import shutil

    files = tmp_path / "files"
    shutil.copytree(subset_files, files)
    with Library.open(tmp_path / "lib", model_path=tiny_model) as lib:
        first = index_paths_on_ray(lib, [files], ClusterOptions(shard_units=4))
        changed = next(p for p in sorted(files.rglob("*.png")))
        changed.write_bytes(changed.read_bytes() + b"\0")  # same pixels, new size and fingerprint
        gone = next(p for p in sorted(files.rglob("*.jpg")))
        gone.unlink()
        second = index_paths_on_ray(lib, [files], ClusterOptions(shard_units=4), prune=True)
    assert first.n_added == 40
    assert (second.shards_total, second.n_updated, second.n_added, second.n_pruned) == (1, 1, 0, 1)
    assert second.n_unchanged == 38
    contents = library_contents(tmp_path / "lib")
    assert len(contents) == 39 and not any(str(gone) in c["files"] for c in contents.values())


@pytest.mark.slow
def test_the_whole_test_split_matches_the_local_indexer(ray_cluster: str, shared_data: Path, default_model: Path,
                                                        tmp_path: Path) -> None:
    import csv

    rows = [r for r in csv.DictReader((shared_data / "manifest.csv").open()) if r["split"] == "test"]
    files = tmp_path / "files"
    copy_subset(shared_data, rows, files)
    with Library.open(tmp_path / "local", model_path=default_model) as lib:
        local = index_paths(lib, [files])
    with Library.open(tmp_path / "ray", model_path=default_model) as lib:
        report = index_paths_on_ray(lib, [files])
    assert report.n_failed == local.n_failed and report.n_added == local.n_added
    assert assert_same_library(tmp_path / "ray", tmp_path / "local") == local.n_added >= len(rows) - local.n_failed


def test_ray_indexing_takes_the_library_writer_lock(tiny_model: Path, tmp_path: Path) -> None:
    """Another process writing the library: a Ray run refuses (here: cancelled while waiting) before starting Ray."""
    import subprocess
    import sys
    import threading

    from engine.library_lock import LibraryInUseError

    with Library.open(tmp_path / "lib", model_path=tiny_model) as library:
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time; from engine.library_lock import WriterLock; "
             "WriterLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)", str(library.path)],
            stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "held"
            cancel = threading.Event()
            cancel.set()
            with pytest.raises(LibraryInUseError, match=f"in use by PID {holder.pid}"):
                index_paths_on_ray(library, [tmp_path], cancel=cancel)
        finally:
            holder.kill()
            holder.wait()

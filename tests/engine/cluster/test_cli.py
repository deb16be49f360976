"""``m3ret index --ray``: ADDRESS vs PATH, and a driver killed mid-run (SIGKILL) then re-run: only the shards
that were neither merged nor written are redone, and every case is in the library once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cluster.cli import looks_like_address
from engine.cluster.indexer import SHARDS_DIR
from engine.cluster.shards import plan_shards, shard_path
from engine.encoder import Encoder
from engine.io.scan import discover
from tests.engine.cluster.test_indexer import library_contents
from tests.engine.conftest import copy_subset, shared_subset

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_address_or_path(tmp_path: Path) -> None:
    assert looks_like_address("auto") and looks_like_address("ray://10.0.0.5:10001")
    assert looks_like_address("127.0.0.1:6379")
    assert not looks_like_address(str(tmp_path))
    (tmp_path / "a:1").mkdir()
    assert not looks_like_address(str(tmp_path / "a:1"))  # an existing folder is a PATH, whatever its name


def _catalog_unit_keys(library: Path) -> set[str]:
    try:
        with sqlite3.connect(f"file:{library / 'catalog.sqlite'}?mode=ro", uri=True, timeout=30) as db:
            return {row[0] for row in db.execute("SELECT unit_key FROM cases")}
    except sqlite3.OperationalError:  # not created yet
        return set()


def test_a_killed_driver_loses_nothing_and_the_rerun_redoes_only_unfinished_shards(
        ray_cluster: str, shared_data: Path, tiny_model: Path, tmp_path: Path) -> None:
    files, library = tmp_path / "files", tmp_path / "lib"
    copy_subset(shared_data, shared_subset(shared_data), files)
    command = [sys.executable, "-m", "engine.cli", "index", "--ray", ray_cluster, str(files), "--library",
               str(library), "--model", str(tiny_model), "--shard-units", "2", "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    driver = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while len(_catalog_unit_keys(library)) < 6 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    driver.send_signal(signal.SIGKILL)
    driver.communicate()
    assert driver.returncode == -signal.SIGKILL, "the driver finished before it could be killed"

    # what the killed run left: merged shards (all their units catalogued) and written, unmerged shard files
    units = [u for u in discover(files) if not hasattr(u, "reason")]
    model_id = Encoder(tiny_model).model_id
    cut = plan_shards(units, {u.key for u in units}, model_id, 2)
    merged_keys = _catalog_unit_keys(library)
    merged = [s for s in cut if all(u.key in merged_keys for u in s.units)]
    assert merged and len(merged) < len(cut) == 20
    assert all(any(u.key in merged_keys for u in s.units) == (s in merged) for s in cut)  # a shard is all or none
    written = [s for s in cut if s not in merged and shard_path(library / SHARDS_DIR, s.digest).is_file()]

    rerun = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    report = json.loads(rerun.stdout)
    assert report["shards"] == {"total": len(cut) - len(merged), "reused": len(written),
                                "computed": len(cut) - len(merged) - len(written), "unfinished": 0}
    assert report["unchanged"] == 2 * len(merged) and report["cases_in_library"] == 40
    assert len(library_contents(library)) == 40  # every case once
    assert not [p for p in (library / SHARDS_DIR).iterdir()]


def test_ray_without_the_extra_says_how_to_install_it(tmp_path: Path) -> None:
    script = ("import sys; sys.modules['ray'] = None; from engine.cli.main import main; "
              f"sys.exit(main(['index', '--ray', {str(tmp_path)!r}, '--library', {str(tmp_path / 'lib')!r}]))")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120)
    assert done.returncode == 2
    assert "pip install 'm3ret[cluster]'" in done.stderr and len(done.stderr.strip().splitlines()) == 1

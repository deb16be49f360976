"""Two ``m3ret index`` runs on one library at once: one waits for the other; every case is indexed once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.engine.conftest import write_phantoms
from tests.engine.test_indexer import assert_consistent

REPO_ROOT = Path(__file__).resolve().parents[3]


def _index(files: Path, library: Path, model: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "index", str(files), "--library", str(library), "--model", str(model),
         "--workers", "0", "--json", *extra],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_two_writers_started_together_index_every_case_once(tmp_path: Path, tiny_model: Path) -> None:
    write_phantoms(tmp_path / "a", 4)
    write_phantoms(tmp_path / "b", 4, first_seed=100)
    library = tmp_path / "lib"  # new: both would create its tables (before: "table cases already exists")
    procs = [_index(tmp_path / "a", library, tiny_model), _index(tmp_path / "b", library, tiny_model)]
    results = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "IntegrityError" not in err
        assert json.loads(out)["failed"] == 0
    assert sum(json.loads(out)["added"] for out, _ in results) == 16
    assert assert_consistent(library) == 16
    with sqlite3.connect(library / "catalog.sqlite") as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT unit_key) FROM cases").fetchone() == (16, 16)


def test_a_writer_that_must_not_wait_is_refused_cleanly(tmp_path: Path, tiny_model: Path) -> None:
    from engine.library_lock import WriterLock

    write_phantoms(tmp_path / "a", 1)
    library = tmp_path / "lib"
    library.mkdir()
    with WriterLock(library).hold():
        proc = _index(tmp_path / "a", library, tiny_model, "--no-wait")
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    (line,) = err.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"m3ret index: error: library {library} is in use by PID {os.getpid()} (since ")

"""kill -9 at random times during indexing, then resume: the library stays consistent after every kill and the
finished library holds exactly the embeddings an uninterrupted run makes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from engine.indexer import index_paths
from engine.library import Library
from tests.engine.conftest import write_phantoms
from tests.engine.test_indexer import assert_consistent

REPO_ROOT = Path(__file__).resolve().parents[3]
ROUNDS = 4
SEED = 14


def _embeddings(library_dir: Path) -> dict[str, np.ndarray]:
    with Library.open(library_dir) as lib:
        records = lib.catalog.list_cases(with_thumbnails=False)
        return {r.unit_key: lib.catalog.embedding(r.id, lib.model_id) for r in records}


def test_random_kills_then_resume_match_an_uninterrupted_run(tmp_path: Path, tiny_model: Path) -> None:
    files = tmp_path / "files"
    write_phantoms(files, 6)
    library_dir = tmp_path / "killed"
    script = textwrap.dedent(f"""
        from pathlib import Path
        import engine.indexer as indexer
        from engine.library import Library
        from tests.engine.crashing_reader import prepare_slowly
        indexer.prepare_unit = prepare_slowly
        print("started", flush=True)
        library = Library.open(Path({str(library_dir)!r}), model_path=Path({str(tiny_model)!r}))
        indexer.index_paths(library, [Path({str(files)!r})], workers=0, batch_size=2)
    """)
    rng = random.Random(SEED)
    killed_alive = 0
    for _ in range(ROUNDS):
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "started"
        time.sleep(rng.uniform(0.2, 2.5))
        if proc.poll() is None:
            killed_alive += 1
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert "Traceback" not in proc.stderr.read()
        if (library_dir / "catalog.sqlite").exists():
            assert_consistent(library_dir)  # after every kill
    assert killed_alive >= 1
    with Library.open(library_dir, model_path=tiny_model) as lib:
        report = index_paths(lib, [files], workers=0)
        assert report.n_failed == 0  # no file was blamed for a kill it did not cause
    assert assert_consistent(library_dir) == 12
    with Library.open(tmp_path / "clean", model_path=tiny_model) as lib:
        index_paths(lib, [files], workers=0)
    killed, clean = _embeddings(library_dir), _embeddings(tmp_path / "clean")
    assert killed.keys() == clean.keys()
    assert all(np.array_equal(killed[k], clean[k]) for k in clean)  # bit-identical vectors

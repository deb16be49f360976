"""Build the packaged app and smoke-test the BUILT executables (``packaging/build.sh`` + ``smoke_test.py``).

Slow (a PyInstaller build: about 4 min on 2 busy cores, then about 1 min of runs) but within the CI budget, so it
runs in CI; the last run's numbers are in ``packaging/LAST_SMOKE_RUN.md``. It builds into a temporary folder,
leaving ``dist/`` alone, and saves the GUI screenshot and the report under ``test-output/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_packaged_app_builds_and_runs_offline(tmp_path: Path, output_dir: Path, shared_data: Path) -> None:
    pytest.importorskip("PyInstaller", reason="PyInstaller not installed (pip install -e .[package])")
    dist = tmp_path / "dist"
    env = os.environ | {"DISTPATH": str(dist), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    build = subprocess.run(["bash", str(REPO / "packaging" / "build.sh")], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=1800)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "FORBIDDEN" not in build.stdout

    smoke = subprocess.run(
        [sys.executable, str(REPO / "packaging" / "smoke_test.py"), "--dist", str(dist / "m3ret"),
         "--screenshot", str(output_dir / "packaged_app.png"), "--report", str(output_dir / "packaged_smoke.md")],
        cwd=tmp_path, env=os.environ | {"M3RET_DATA": str(shared_data)}, capture_output=True, text=True,
        timeout=900,
    )
    assert smoke.returncode == 0, smoke.stdout[-4000:] + smoke.stderr[-2000:]
    assert "SMOKE TEST PASSED" in smoke.stdout

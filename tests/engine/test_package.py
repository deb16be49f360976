"""The engine package's import-time guarantees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_importing_the_engine_stops_onnxruntime_writing_telemetry(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    code = "import engine.encoder, engine.vectors, onnxruntime"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=Path(__file__).resolve().parents[2])
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert written == [], f"importing the engine wrote under HOME: {written}"

"""Shared fixtures: headless Qt/VTK, an isolated M3RET_HOME, the shared data location, output folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkOSOpenGLRenderWindow")

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT_DIR = REPO_ROOT / "test-output"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own M3RET_HOME so nothing touches the real user folders."""
    home = tmp_path_factory.mktemp("m3ret_home")
    monkeypatch.setenv("M3RET_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared development data folder; tests using it are skipped with a reason where it is absent."""
    from engine.config import shared_data_dir

    found = shared_data_dir()
    if found is None:
        pytest.skip("shared data absent: set M3RET_DATA to the folder holding manifest.csv")
    return found


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where tests save screenshots and reports for a person to look at."""
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR

"""Helpers for the app tests: pick real files from the shared data manifests, read them, save screenshots."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("vtkmodules")

from engine.config import ReadLimits  # noqa: E402
from engine.io.case import Case  # noqa: E402
from engine.io.scan import read_path  # noqa: E402


REPO = Path(__file__).resolve().parents[2]


def _free_display() -> int:
    for number in range(90, 140):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    pytest.skip("no free X display number")


@pytest.fixture()
def xvfb() -> Iterator[str]:
    """A real X server (Xvfb) on a free display, stopped afterwards; skips where Xvfb is not installed."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb not installed (apt-get install xvfb)")
    number = _free_display()
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.skip("Xvfb did not start")
            time.sleep(0.1)
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def x_session_env(display: str) -> dict[str, str]:
    """The environment of a child process on the real X ``display`` (Qt's xcb platform, VTK's default X OpenGL
    window, not the offscreen/OSMesa pair the test process uses); skips where the desktop packages are missing."""
    from app.platform_check import startup_problem

    missing = startup_problem({"DISPLAY": display})
    if missing is not None:
        pytest.skip(f"this machine lacks the desktop packages the README lists: {missing}")
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "VTK_DEFAULT_OPENGL_WINDOW")}
    env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb", PYTHONPATH=str(REPO))
    return env


def manifest_rows(shared_data: Path, manifest: str = "manifest.csv") -> list[dict[str, str]]:
    with open(shared_data / manifest, newline="") as f:
        return list(csv.DictReader(f))


def shared_file(shared_data: Path, predicate, manifest: str = "manifest.csv") -> Path:  # noqa: ANN001
    """The first manifest path matching ``predicate(row)``; skips the test when there is none."""
    base = (shared_data / manifest).parent
    for row in manifest_rows(shared_data, manifest):
        if predicate(row):
            path = base / row["path"]
            if path.exists():
                return path
    pytest.skip(f"no matching file in {manifest}")


def read_case(path: Path, limits: ReadLimits | None = None) -> Case:
    """The first Case under ``path`` (fails the test with the reader's reason otherwise)."""
    items = list(read_path(path, limits) if limits is not None else read_path(path))
    cases = [item for item in items if isinstance(item, Case)]
    assert cases, f"could not read {path}: {items}"
    return cases[0]


def save_png(output_dir: Path, name: str, rgb: np.ndarray) -> Path:
    """Save an ``H W 3`` uint8 screenshot under ``output_dir/screenshots``."""
    folder = output_dir / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    return path


def assert_not_blank(rgb: np.ndarray) -> None:
    """A rendered image shows structure: not one flat colour."""
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.size > 0
    assert rgb.std() > 10, f"rendered image looks blank (std {rgb.std():.2f})"


def changed_fraction(a: np.ndarray, b: np.ndarray, tolerance: int = 8) -> float:
    """Fraction of pixels that differ by more than ``tolerance`` grey levels."""
    return float((np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1) > tolerance).mean())


def send_drag(widget, button, start: tuple[float, float], end: tuple[float, float], modifiers=None, steps: int = 5):  # noqa: ANN001
    """Press ``button`` at ``start``, move to ``end`` in ``steps`` and release (QTest cannot drag with buttons)."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    mods = modifiers if modifiers is not None else Qt.KeyboardModifier.NoModifier

    def send(kind, x: float, y: float, buttons) -> None:  # noqa: ANN001
        local = QPointF(x, y)
        event = QMouseEvent(kind, local, widget.mapToGlobal(local), button, buttons, mods)
        QApplication.sendEvent(widget, event)

    send(QEvent.Type.MouseButtonPress, *start, button)
    for i in range(1, steps + 1):
        f = i / steps
        send(QEvent.Type.MouseMove, start[0] + f * (end[0] - start[0]), start[1] + f * (end[1] - start[1]), button)
    send(QEvent.Type.MouseButtonRelease, *end, Qt.MouseButton.NoButton)


def send_hover(widget, x: float, y: float) -> None:  # noqa: ANN001
    """A mouse move without buttons at widget position ``(x, y)``."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    local = QPointF(x, y)
    event = QMouseEvent(QEvent.Type.MouseMove, local, widget.mapToGlobal(local), Qt.MouseButton.NoButton,
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def send_wheel(widget, steps: int, modifiers=None) -> None:  # noqa: ANN001
    """Mouse wheel ``steps`` notches (positive = forward) over the widget centre."""
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    mods = modifiers if modifiers is not None else Qt.KeyboardModifier.NoModifier
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, widget.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 120 * steps),
                        Qt.MouseButton.NoButton, mods, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def show_widget(qtbot, widget, width: int = 640, height: int = 520):  # noqa: ANN001
    """Register, size and show a widget, and wait until it is on (offscreen) screen."""
    qtbot.addWidget(widget)
    widget.resize(width, height)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


# ---- a small real library for the window tests (tiny ONNX model from the engine tests) ----------------------

APP_SUBSET = {"xray": 4, "mri": 4, "ct": 3, "ultrasound": 4}


@pytest.fixture(scope="session")
def app_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny deterministic ONNX encoder that follows engine.model_format (no trained weights needed)."""
    pytest.importorskip("onnx", reason="onnx (dev/train extra) builds the test model")
    from tests.engine.conftest import build_pooling_model

    return build_pooling_model(tmp_path_factory.mktemp("app_models") / "tiny.onnx")


@pytest.fixture(scope="session")
def app_library(shared_data: Path, app_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A library of ~15 real cases (X-ray, MRI, CT, ultrasound stills and videos), modality from the manifest.
    Tests must not modify it."""
    from engine.indexer import index_paths
    from engine.library import Library
    from tests.engine.conftest import MANIFEST_MODALITY_CODES, copy_subset, shared_subset

    rows = shared_subset(shared_data, APP_SUBSET)
    by_modality = copy_subset(shared_data, rows, tmp_path_factory.mktemp("app_files"))
    library_dir = tmp_path_factory.mktemp("app_library") / "library"
    with Library.open(library_dir, model_path=app_model) as library:
        for modality, paths in by_modality.items():
            report = index_paths(library, paths, workers=0, modality=MANIFEST_MODALITY_CODES[modality])
            assert report.n_failed == 0, report.failures
    return library_dir

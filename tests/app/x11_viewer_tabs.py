"""Run by tests/app/test_main_window.py in a child process on a real X server (Xvfb, Qt's xcb platform, VTK's X
OpenGL windows): what the screen really shows in the 3D viewer's four views when the Viewer tab comes back after a
query. The offscreen platform keeps no screen, so only a real X server shows a view that was not drawn again.

``python -m tests.app.x11_viewer_tabs LIBRARY MODEL OUT_DIR`` opens LIBRARY, opens the file of its first volume case
as the query (the app shows it in the viewer and at once searches, so the results tab comes up), clicks back to the
Viewer tab and grabs the X screen (``viewer_again.png``); then makes every view draw and grabs it again
(``viewer_drawn.png``, what each view must show). Prints one ``REPORT {json}`` line: per view, its screen rectangle
and the fraction of its pixels that differ between the grabs.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QEventLoop, QPoint
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

TIMEOUT_S = 60.0


def run_events(seconds: float, until: Callable[[], bool] | None = None) -> None:
    """Process Qt events for ``seconds`` (or until ``until()`` is true; then a timeout is an error)."""
    deadline = time.monotonic() + seconds
    while until is None or not until():
        if time.monotonic() > deadline:
            if until is None:
                return
            raise TimeoutError(f"still waiting after {seconds:.0f} s")
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.005)


def grab_screen() -> np.ndarray:
    """What the X server shows (the root window), as uint8 ``H W 3`` RGB."""
    image = QApplication.primaryScreen().grabWindow(0).toImage().convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    rgb = np.frombuffer(image.constBits(), np.uint8, count=stride * height).reshape(height, stride)
    return rgb[:, : width * 3].reshape(height, width, 3).copy()


def changed(a: np.ndarray, b: np.ndarray, tolerance: int = 8) -> float:
    """Fraction of pixels that differ by more than ``tolerance`` grey levels."""
    return float((np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1) > tolerance).mean())


def main(argv: list[str]) -> int:
    library, model, out = (Path(a) for a in argv)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv[:1])
    from app.main_window import RESULTS_TAB, VIEWER_TAB, MainWindow
    from app.settings import AppSettings
    from app.viewers.canvas import VtkCanvas

    window = MainWindow(AppSettings(), model_path=model, interactive=False)
    window.resize(1280, 800)
    window.move(0, 0)
    window.show()
    seen: set[str] = set()
    window.libraryOpened.connect(lambda *_: seen.add("library"))
    window.resultsShown.connect(lambda *_: seen.add("results"))
    window.errorShown.connect(lambda message: print("app error:", message, flush=True))
    window.open_library(library)
    run_events(TIMEOUT_S, lambda: "library" in seen)
    query_file = Path(next(r.path for r in window.library_view.visible_records() if r.kind == "volume"))
    window.open_query_path(query_file)  # viewer tab, then the search switches to the results tab
    run_events(TIMEOUT_S, lambda: "results" in seen)
    run_events(0.8)
    assert window.tabs.currentIndex() == RESULTS_TAB
    shots = {"results": grab_screen()}

    window.tabs.setCurrentIndex(VIEWER_TAB)  # what a click on the Viewer tab does
    run_events(0.8)  # far longer than a repaint takes; the bug lasted until the view was clicked
    shots["viewer_again"] = grab_screen()
    canvases = window.viewer.findChildren(VtkCanvas)
    for canvas in canvases:
        canvas.render_now()
    run_events(0.3)
    shots["viewer_drawn"] = grab_screen()

    views = []
    for canvas in canvases:
        origin, ratio = canvas.mapToGlobal(QPoint(0, 0)), canvas.devicePixelRatio()
        x, y = int(origin.x() * ratio), int(origin.y() * ratio)
        w, h = int(canvas.width() * ratio), int(canvas.height() * ratio)
        crop = {name: shot[y : y + h, x : x + w] for name, shot in shots.items()}
        views.append({"view": getattr(canvas, "label", "") or type(canvas).__name__,
                      "rect": [x, y, w, h], "window": canvas.GetRenderWindow().GetClassName(),
                      "shown_vs_drawn": changed(crop["viewer_again"], crop["viewer_drawn"]),
                      "shown_vs_results": changed(crop["viewer_again"], crop["results"]),
                      "drawn_vs_results": changed(crop["viewer_drawn"], crop["results"]),
                      "drawn_std": float(crop["viewer_drawn"].std())})
    for name, shot in shots.items():
        cv2.imwrite(str(out / f"x11_{name}.png"), shot[..., ::-1])
    report = {"platform": app.platformName(), "views": views,
              "volume_rendering_built": bool(window.viewer.render_view.loaded)}
    print("REPORT " + json.dumps(report), flush=True)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

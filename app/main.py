"""Entry point of the desktop app (``m3ret-app``): logging, settings, QApplication, main window.

``m3ret-app [--library FOLDER] [--model FILE.onnx] [QUERY_PATH]``: opens the given library (or the last one, or
the default library) and, when given, reads QUERY_PATH as the query.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from engine.config import user_log_dir

log = logging.getLogger("app")
LOG_FILENAME = "m3ret-app.log"


def setup_logging(level: int = logging.INFO) -> Path:
    """Log to a rotating file under ``engine.config.user_log_dir()`` (and warnings to stderr)."""
    folder = user_log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOG_FILENAME
    file_handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in (file_handler, console):
        root.addHandler(handler)
    return path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="m3ret-app", description="M3Ret desktop app: find similar medical cases.")
    parser.add_argument("query", nargs="?", type=Path, help="a file or folder to open as the query")
    parser.add_argument("--library", type=Path, help="library folder (default: the last one used)")
    parser.add_argument("--model", type=Path, help="ONNX model file (default: the bundled model)")
    parser.add_argument("--debug", action="store_true", help="verbose log file")
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="save a screenshot of the main window when quitting (with --quit-after-ms)")
    parser.add_argument("--quit-after-ms", type=int, default=None, metavar="MS",
                        help="quit MS milliseconds after the window is shown (smoke tests of the packaged app)")
    return parser.parse_args(argv)


def build_window(args: argparse.Namespace, interactive: bool = True):  # noqa: ANN201 (MainWindow; Qt imported late)
    """Settings + main window + the library to open (shared by ``main`` and the startup benchmark)."""
    from app.main_window import MainWindow
    from app.settings import AppSettings

    settings = AppSettings()
    window = MainWindow(settings, model_path=args.model, interactive=interactive)
    library = args.library  # created when it does not exist yet
    if library is None and settings.last_library is not None:
        library = settings.last_library
        if not library.is_dir():
            log.warning("last library %s is gone; opening the default library", library)
            library = None
    window.show()
    window.open_library(library)
    if args.query is not None:
        window.libraryOpened.connect(lambda _lib: window.open_query_path(args.query))
    return window


def schedule_quit(app, window, delay_ms: int, screenshot: Path | None, started: float) -> None:  # noqa: ANN001
    """Smoke tests: print when the event loop first runs (window on screen), then after ``delay_ms`` save a
    screenshot of ``window`` (VTK canvases included) and quit."""
    from PySide6.QtCore import QTimer

    def shown() -> None:
        print(f"m3ret-app: window shown at epoch {time.time():.3f} ({time.perf_counter() - started:.2f} s after "
              "main())", flush=True)

    def finish() -> None:
        if screenshot is not None:
            import cv2

            from app.viewers.canvas import grab_widget

            screenshot.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(screenshot), grab_widget(window)[..., ::-1])
        app.quit()

    QTimer.singleShot(0, shown)
    QTimer.singleShot(max(0, delay_ms), finish)


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    log_path = setup_logging(logging.DEBUG if args.debug else logging.INFO)
    from app.platform_check import route_qt_messages_to_log, startup_problem

    problem = startup_problem()
    if problem is not None:  # Qt would abort with a message naming the wrong library
        log.error("m3ret-app: error: %s", problem)
        return 1
    route_qt_messages_to_log()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("M3Ret")
    app.setOrganizationName("m3ret")
    window = build_window(args)
    log.info("window shown in %.2f s (log: %s)", time.perf_counter() - started, log_path)
    if args.quit_after_ms is not None:
        schedule_quit(app, window, args.quit_after_ms, args.screenshot, started)
    code = app.exec()
    del window
    return int(code)


if __name__ == "__main__":
    sys.exit(main())

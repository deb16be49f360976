"""The entry point: arguments, logging to the user log dir, window built with the last library."""

from __future__ import annotations

import logging
from pathlib import Path

from engine.config import user_log_dir
from app.main import build_window, parse_args, setup_logging
from app.settings import AppSettings


def test_arguments() -> None:
    args = parse_args(["--library", "/tmp/lib", "--model", "m.onnx", "scan.nii.gz"])
    assert args.library == Path("/tmp/lib") and args.model == Path("m.onnx") and args.query == Path("scan.nii.gz")
    assert parse_args([]).library is None


def test_logging_goes_to_the_user_log_dir() -> None:
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        path = setup_logging()
        logging.getLogger("app.test").info("hello from the test")
        for handler in root.handlers:
            handler.flush()
        assert path.parent == user_log_dir() and "hello from the test" in path.read_text()
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()


def test_window_opens_the_last_library(qtbot, app_library: Path, app_model: Path) -> None:
    AppSettings().last_library = app_library
    window = build_window(parse_args(["--model", str(app_model)]), interactive=False)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.library is not None, timeout=30_000)
    assert window.library.path == app_library
    assert window.library_view.model.rowCount() > 0


def test_explicit_library_is_created_and_a_vanished_last_library_falls_back(qtbot, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh_library"
    window = build_window(parse_args(["--library", str(fresh)]), interactive=False)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.library is not None, timeout=30_000)
    assert window.library.path == fresh and fresh.is_dir()
    window.close()

    AppSettings().last_library = tmp_path / "deleted_library"
    second = build_window(parse_args([]), interactive=False)
    qtbot.addWidget(second)
    qtbot.waitUntil(lambda: second.library is not None, timeout=30_000)
    from engine.config import default_library_dir

    assert second.library.path == default_library_dir()

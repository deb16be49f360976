"""app.platform_check: a desktop without Qt's xcb libraries gets one clear message naming the apt packages, in
the log too; with them, the app starts in a real X session (Xvfb)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import platform_check
from app.platform_check import install_hint, missing_xcb_libraries, startup_problem
from tests.app.conftest import x_session_env

REPO = Path(__file__).resolve().parents[2]


def fake_ldd(folder: Path, missing: list[str]) -> Path:
    """An ``ldd`` that reports ``missing`` as not found (how the loader answers on a machine without them)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "ldd"
    lines = "".join(f"\\t{name} => not found\\n" for name in missing)
    script.write_text(f"#!/bin/sh\nprintf '\\tlibc.so.6 => /lib/libc.so.6 (0x0)\\n{lines}'\n")
    script.chmod(0o755)
    return folder


def test_missing_libraries_are_named_with_their_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = fake_ldd(tmp_path / "bin", ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"])
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(platform_check, "_loadable", lambda name: name != "libxcb-cursor.so.0")  # dlopen fails
    assert missing_xcb_libraries() == ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    message = startup_problem({"DISPLAY": ":0"})
    assert message is not None and "\n" not in message
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" in message
    assert startup_problem({"QT_QPA_PLATFORM": "offscreen"}) is None  # headless runs are not checked
    assert install_hint(["libunknown.so.9"]) == "sudo apt-get install libunknown.so.9"


def test_the_bundle_plugin_folder_is_found_through_qt_plugin_path(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The PyInstaller bundle names its plugin folder in QT_PLUGIN_PATH: that is the plugin checked."""
    plugins = tmp_path / "bundle" / "PySide6" / "Qt" / "plugins"
    (plugins / "platforms").mkdir(parents=True)
    (plugins / "platforms" / "libqxcb.so").write_bytes(b"\x7fELF")
    monkeypatch.setenv("QT_PLUGIN_PATH", str(plugins))
    assert platform_check.qt_plugin_dir() == plugins
    monkeypatch.setenv("QT_PLUGIN_PATH", str(tmp_path / "nowhere"))
    found = platform_check.qt_plugin_dir()
    assert found is None or (found / "platforms" / "libqxcb.so").is_file()  # PySide6's own


def test_nothing_reported_when_the_loader_finds_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = fake_ldd(tmp_path / "bin", [])
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(platform_check, "_loadable", lambda name: True)
    assert startup_problem({"QT_QPA_PLATFORM": "xcb"}) is None


def test_the_app_says_what_to_install_and_logs_it(tmp_path: Path) -> None:
    bin_dir = fake_ldd(tmp_path / "bin", ["libxcb-icccm.so.4"])
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", DISPLAY=":99", M3RET_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "app.main", "--library", str(tmp_path / "lib")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "m3ret-app: error:" in proc.stderr and "sudo apt-get install libxcb-icccm4" in proc.stderr
    log_text = (tmp_path / "home" / "logs" / "m3ret-app.log").read_text()
    assert "libxcb-icccm4" in log_text


def test_the_app_starts_in_a_real_x_session(xvfb: str, tmp_path: Path, output_dir: Path) -> None:
    env = x_session_env(xvfb)
    env.update(M3RET_HOME=str(tmp_path / "home"))
    shot = output_dir / "x11_session.png"
    shot.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "app.main", "--library", str(tmp_path / "lib"),
                           "--quit-after-ms", "3000", "--screenshot", str(shot)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "window shown" in proc.stdout and shot.is_file() and shot.stat().st_size > 1000

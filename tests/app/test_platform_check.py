"""app.platform_check: a desktop without Qt's xcb libraries gets one clear message naming the apt packages, in
the log too; with them, the app starts in a real X session (Xvfb)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import platform_check
from app.platform_check import install_hint, missing_xcb_libraries, startup_problem
from tests.app.conftest import x_session_env

REPO = Path(__file__).resolve().parents[2]
FOUR = ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxkbcommon-x11.so.0"]  # issue 12
BASE_LIBRARIES = {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1"}  # every Linux system has them


def hide_libraries():  # noqa: ANN201 (the module packaging/hide_libraries.py)
    spec = importlib.util.spec_from_file_location("hide_libraries", REPO / "packaging" / "hide_libraries.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    monkeypatch.setattr(platform_check, "_unloadable", lambda name: name)  # dlopen of libxcb-cursor.so.0 fails
    assert missing_xcb_libraries() == ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    message = startup_problem({"DISPLAY": ":0"})
    assert message is not None and "\n" not in message
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" in message
    assert startup_problem({"QT_QPA_PLATFORM": "offscreen"}) is None  # headless runs are not checked
    # a library of unknown package is named with how to find its package, never handed to apt-get as a package
    assert install_hint(["libunknown.so.9"]) == \
        "the package(s) providing libunknown.so.9 (apt-file search libunknown.so.9)"
    assert install_hint(["libGLX.so.0", "libunknown.so.9"]).startswith("sudo apt-get install libglx0; and the package")


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


def test_a_library_that_fails_on_its_dependency_names_the_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundle ships libxcb-cursor.so.0; on a system without libxcb.so.1 its dlopen fails naming libxcb.so.1:
    that (package libxcb1) is what to install, not libxcb-cursor0."""

    def cdll(name: str) -> None:
        if name == "libxcb-cursor.so.0":
            raise OSError("libxcb.so.1: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(platform_check.ctypes, "CDLL", cdll)
    assert platform_check._unloadable("libxcb-cursor.so.0") == "libxcb.so.1"
    assert platform_check._unloadable("libxcb-icccm.so.4") is None

    def cdll_absent(name: str) -> None:
        raise OSError(f"{name}: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(platform_check.ctypes, "CDLL", cdll_absent)
    assert platform_check._unloadable("libxcb-cursor.so.0") == "libxcb-cursor.so.0"


def test_every_system_library_the_xcb_plugin_links_has_its_package() -> None:
    """Whatever the loader may miss among the plugin's direct dependencies (outside Qt and the C/C++ runtime), the
    message names a real apt package for it: the GL libraries the packaged app takes from the system included."""
    readelf = shutil.which("readelf")
    plugin_dir = platform_check.qt_plugin_dir()
    if readelf is None or plugin_dir is None:
        pytest.skip("readelf or Qt's xcb plugin absent")
    targets = [plugin_dir / "platforms" / "libqxcb.so", *sorted((plugin_dir.parent / "lib").glob("libQt6XcbQpa.so*"))]
    out = subprocess.run([readelf, "-d", *map(str, targets)], capture_output=True, text=True, check=True).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))
    system = {name for name in needed if not name.startswith("libQt6")} - BASE_LIBRARIES
    assert "libxcb-icccm.so.4" in system  # the parse worked
    assert system - set(platform_check.XCB_PACKAGES) == set()
    for name in ("libGLX.so.0", "libGLdispatch.so.0", "libEGL.so.1", "libGL.so.1", "libxcb.so.1"):  # bundle: system
        assert name in platform_check.XCB_PACKAGES


def test_nothing_reported_when_the_loader_finds_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = fake_ldd(tmp_path / "bin", [])
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(platform_check, "_unloadable", lambda name: None)
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


def test_without_the_four_libraries_for_real(xvfb: str, tmp_path: Path) -> None:
    """A real machine without libxcb-icccm4, libxcb-keysyms1, libxcb-cursor0 and libxkbcommon-x11-0: their files are
    hidden in a private mount namespace (``ldd`` on Qt's plugin then says "not found"); the app, on a real X
    display, exits at once with one message naming the four packages, and logs it; Qt's own message never shows."""
    helper = hide_libraries()
    prefix = helper.hide_libraries_prefix(FOUR)
    if prefix is None:
        pytest.skip("cannot hide libraries here (needs root or unprivileged user namespaces with overlayfs)")
    plugin_dir = platform_check.qt_plugin_dir()
    assert plugin_dir is not None
    assert helper.not_found_by_ldd(prefix, plugin_dir / "platforms" / "libqxcb.so") == FOUR
    env = x_session_env(xvfb)  # skips where this machine lacks the libraries in the first place
    env.update(M3RET_HOME=str(tmp_path / "home"))
    proc = subprocess.run([*prefix, sys.executable, "-m", "app.main", "--library", str(tmp_path / "lib")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    expected = "sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0"
    assert expected in proc.stderr and "m3ret-app: error:" in proc.stderr
    assert "qt.qpa" not in proc.stderr and "Could not load the Qt platform plugin" not in proc.stderr
    assert expected in (tmp_path / "home" / "logs" / "m3ret-app.log").read_text()

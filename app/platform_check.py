"""Start-up check of Qt's X11 platform plugin: name the missing system libraries and the packages that hold them.

On a fresh Debian/Ubuntu desktop, Qt's ``xcb`` plugin cannot load without ``libxcb-icccm4``, ``libxcb-keysyms1``,
``libxcb-cursor0``, ``libxkbcommon-x11-0``, ...; Qt then aborts with a message that points at the wrong library.
Before the ``QApplication`` is made, ``missing_xcb_libraries`` runs ``ldd`` on the plugin and its ``XcbQpa``
library (what the dynamic loader will not find) and looks for the libraries Qt opens at run time (``dlopen``:
``libxcb-cursor.so.0``); ``startup_problem`` turns that into one message naming the apt packages. The check only
runs where Qt will pick ``xcb`` (Linux, ``QT_QPA_PLATFORM`` unset or ``xcb``); without ``ldd`` it says nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

# library -> Debian/Ubuntu package (what the xcb platform plugin of Qt 6 needs beyond a headless system)
XCB_PACKAGES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb.so.1": "libxcb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libXau.so.6": "libxau6",
    "libXdmcp.so.6": "libxdmcp6",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libGLdispatch.so.0": "libglvnd0",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libpng16.so.16": "libpng16-16",
    "libexpat.so.1": "libexpat1",
    "libz.so.1": "zlib1g",
}
DLOPENED = ("libxcb-cursor.so.0",)  # opened by the plugin at run time, so ldd cannot see them


def qt_plugin_dir() -> Path | None:
    """The Qt plugin folder holding ``platforms/libqxcb.so``: ``$QT_PLUGIN_PATH`` entries first (what the
    PyInstaller bundle sets), then Qt's own (``PySide6/Qt/plugins``); None when neither has it."""
    candidates = [Path(p) for p in os.environ.get("QT_PLUGIN_PATH", "").split(os.pathsep) if p]
    try:
        from PySide6.QtCore import QLibraryInfo

        candidates.append(Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)))
    except Exception as exc:  # noqa: BLE001 (no Qt at all is reported by the import itself)
        log.debug("no Qt plugin folder from Qt (%s)", exc)
    return next((c for c in candidates if (c / "platforms" / "libqxcb.so").is_file()), None)


def xcb_will_be_used(environ: dict[str, str] | os._Environ = os.environ) -> bool:
    """Whether Qt will load the xcb plugin: Linux, and ``QT_QPA_PLATFORM`` unset or naming xcb."""
    if not sys.platform.startswith("linux"):
        return False
    platform = environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    return platform in ("", "xcb")


def missing_xcb_libraries(plugin_dir: Path | None = None) -> list[str]:
    """Libraries the xcb plugin needs that this system lacks (sorted; [] when all are there or ``ldd`` is absent)."""
    plugin_dir = plugin_dir or qt_plugin_dir()
    ldd = shutil.which("ldd")
    if plugin_dir is None or ldd is None:
        return []
    plugin = plugin_dir / "platforms" / "libqxcb.so"
    if not plugin.is_file():
        return []
    missing: set[str] = set()
    targets = [plugin] + sorted((plugin_dir.parent / "lib").glob("libQt6XcbQpa.so*"))[:1]
    for target in targets:
        try:
            out = subprocess.run([ldd, str(target)], capture_output=True, text=True, timeout=20, check=False).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("ldd %s failed (%s)", target, exc)
            continue
        for line in out.splitlines():
            if "=> not found" in line:
                missing.add(line.split("=>")[0].strip())
    for name in DLOPENED:
        failed = _unloadable(name)
        if failed is not None:
            missing.add(failed)
    return sorted(missing)


def _unloadable(name: str) -> str | None:
    """None when ``name`` loads; else the library the loader could not find: ``name`` itself, or the dependency it
    names (a bundled ``libxcb-cursor.so.0`` fails when the system lacks ``libxcb.so.1``: that is what is missing)."""
    try:
        ctypes.CDLL(name)
        return None
    except OSError as exc:
        failed = str(exc).split(":", 1)[0].strip()  # glibc: "libX.so.1: cannot open shared object file: ..."
        return failed if failed.startswith("lib") and ".so" in failed else name


def install_hint(libraries: list[str]) -> str:
    """``sudo apt-get install PKG...`` for the libraries whose Debian/Ubuntu package is known; the others are named
    with how to find their package (``apt-file search``), never passed to apt-get as if they were packages."""
    packages = sorted({XCB_PACKAGES[name] for name in libraries if name in XCB_PACKAGES})
    unknown = sorted({name for name in libraries if name not in XCB_PACKAGES})
    parts = ["sudo apt-get install " + " ".join(packages)] if packages else []
    if unknown:
        parts.append("the package(s) providing " + ", ".join(unknown) + " (apt-file search " + unknown[0] + ")")
    return "; and ".join(parts)


def startup_problem(environ: dict[str, str] | os._Environ = os.environ, plugin_dir: Path | None = None) -> str | None:
    """One message naming what is missing for the X11 desktop and how to install it; None when nothing is."""
    if not xcb_will_be_used(environ):
        return None
    missing = missing_xcb_libraries(plugin_dir)
    if not missing:
        return None
    return (f"the desktop (Qt xcb platform plugin) cannot start: missing {', '.join(missing)}. "
            f"Install them with: {install_hint(missing)}   (or run headless with QT_QPA_PLATFORM=offscreen)")


def route_qt_messages_to_log() -> None:
    """Send Qt's own warnings and fatal messages (platform plugin failures included) to the app log."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    qt_log = logging.getLogger("qt")
    levels = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
              QtMsgType.QtWarningMsg: logging.WARNING, QtMsgType.QtCriticalMsg: logging.ERROR,
              QtMsgType.QtFatalMsg: logging.CRITICAL}

    def handler(kind: QtMsgType, _context: object, message: str) -> None:
        qt_log.log(levels.get(kind, logging.WARNING), "%s", message)
        if kind == QtMsgType.QtFatalMsg:
            for h in logging.getLogger().handlers:
                h.flush()

    qInstallMessageHandler(handler)


def main() -> int:
    """``python -m app.platform_check`` (run by ``make setup``): say what the desktop app still needs; exit 0."""
    problem = startup_problem()
    print(f"note: {problem}" if problem else "desktop app: Qt's X11 libraries are present")
    return 0


if __name__ == "__main__":
    sys.exit(main())

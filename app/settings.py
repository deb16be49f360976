"""Persistent settings (QSettings, INI file under ``engine.config.user_config_dir()``).

Holds: the last library folder, recent libraries, window geometry and dock state, window/level presets (overrides
of ``app.window_level.PRESETS``), keyboard shortcuts (overrides of ``DEFAULT_SHORTCUTS``) and search options.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow

from engine.config import user_config_dir
from app.window_level import PRESETS, Window

log = logging.getLogger(__name__)

SETTINGS_FILENAME = "m3ret-app.ini"
MAX_RECENT = 8
DEFAULT_SHORTCUTS: dict[str, str] = {
    "open_library": "Ctrl+L",
    "add_folder": "Ctrl+Shift+A",
    "open_file": "Ctrl+O",
    "find_similar": "Ctrl+F",
    "cancel_indexing": "Ctrl+.",
    "show_failures": "Ctrl+Shift+F",
    "quit": "Ctrl+Q",
}
DEFAULT_K = 12


class AppSettings:
    """Typed access to the app's QSettings file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else user_config_dir() / SETTINGS_FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.qsettings = QSettings(str(self.path), QSettings.Format.IniFormat)

    def sync(self) -> None:
        """Write pending changes to disk."""
        self.qsettings.sync()

    # ---- libraries -------------------------------------------------------------------------------------

    @property
    def last_library(self) -> Path | None:
        value = self.qsettings.value("library/last", "", str)
        return Path(value) if value else None

    @last_library.setter
    def last_library(self, path: Path | None) -> None:
        self.qsettings.setValue("library/last", str(path) if path else "")
        if path:
            recent = [str(path)] + [p for p in self.recent_libraries_raw() if p != str(path)]
            self.qsettings.setValue("library/recent", recent[:MAX_RECENT])

    def recent_libraries_raw(self) -> list[str]:
        value = self.qsettings.value("library/recent", [])
        if isinstance(value, str):
            return [value] if value else []
        return [str(v) for v in value or []]

    @property
    def recent_libraries(self) -> list[Path]:
        return [Path(p) for p in self.recent_libraries_raw()]

    # ---- window geometry --------------------------------------------------------------------------------

    def save_window(self, window: QMainWindow) -> None:
        self.qsettings.setValue("window/geometry", window.saveGeometry())
        self.qsettings.setValue("window/state", window.saveState())

    def restore_window(self, window: QMainWindow) -> bool:
        """Restore geometry and dock state; False when none was saved."""
        geometry = self.qsettings.value("window/geometry")
        state = self.qsettings.value("window/state")
        restored = False
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            restored = window.restoreGeometry(geometry)
        if isinstance(state, QByteArray) and not state.isEmpty():
            window.restoreState(state)
        return restored

    # ---- window/level presets ---------------------------------------------------------------------------

    def window_presets(self) -> dict[str, Window]:
        """The presets: defaults overridden by ``presets/<name> = level,width`` entries."""
        presets = dict(PRESETS)
        for name in presets:
            raw = self.qsettings.value(f"presets/{name}", "", str)
            if not raw:
                continue
            try:
                level, width = (float(v) for v in raw.split(","))
                if width <= 0:
                    raise ValueError("width must be positive")
                presets[name] = Window(level, width)
            except ValueError as exc:
                log.warning("settings %s: ignoring preset %s=%r (%s)", self.path, name, raw, exc)
        return presets

    def set_window_preset(self, name: str, window: Window) -> None:
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}")
        self.qsettings.setValue(f"presets/{name}", f"{window.level:g},{window.width:g}")

    # ---- shortcuts ---------------------------------------------------------------------------------------

    def shortcuts(self) -> dict[str, str]:
        """Action name -> key sequence text: defaults overridden by ``shortcuts/<action>`` entries."""
        return {name: self.qsettings.value(f"shortcuts/{name}", default, str) or default
                for name, default in DEFAULT_SHORTCUTS.items()}

    def set_shortcut(self, action: str, sequence: str) -> None:
        if action not in DEFAULT_SHORTCUTS:
            raise KeyError(f"unknown action {action!r}")
        self.qsettings.setValue(f"shortcuts/{action}", sequence)

    # ---- search options ---------------------------------------------------------------------------------

    @property
    def k(self) -> int:
        return max(1, int(self.qsettings.value("search/k", DEFAULT_K, int)))

    @k.setter
    def k(self, value: int) -> None:
        self.qsettings.setValue("search/k", int(value))

    @property
    def modality_scope(self) -> str:
        """'all', 'same' or 'cross'."""
        value = self.qsettings.value("search/scope", "all", str)
        return value if value in ("all", "same", "cross") else "all"

    @modality_scope.setter
    def modality_scope(self, value: str) -> None:
        self.qsettings.setValue("search/scope", value)

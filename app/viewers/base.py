"""What every case viewer offers the rest of the app (compare view, main window, tests)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QWidget

from engine.io.case import Case
from app.window_level import PRESET_KEYS, PRESETS, Window, auto_window

PRESET_LABELS = {"auto": "Auto (0)", "lung": "CT lung (1)", "mediastinum": "CT mediastinum (2)",
                 "bone": "CT bone (3)", "brain": "CT brain (4)"}
NUMBER_KEYS = {int(Qt.Key.Key_0) + n: n for n in range(10)}


class CaseViewer(QWidget):
    """Base class: shows one ``Case``; may offer window/level (``windowChanged``) and a status line."""

    windowChanged = Signal(object)  # Window chosen by the user (drag, preset key)
    statusMessage = Signal(str)  # pixel readout and similar one-line information

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.case: Case | None = None

    def set_case(self, case: Case) -> None:
        """Show ``case`` (GUI thread; the case was read in a worker)."""
        raise NotImplementedError

    @property
    def supports_window(self) -> bool:
        return False

    def window(self) -> Window | None:
        return None

    def set_window(self, window: Window, emit: bool = False) -> None:
        """Apply a window without echoing ``windowChanged`` unless ``emit`` (used to link two viewers)."""

    def apply_preset(self, name: str) -> None:
        """Apply a named preset ('lung', 'mediastinum', 'bone', 'brain') or 'auto'."""
        if self.case is None or name not in ("auto", *PRESETS):  # "custom" names the current window: no change
            return
        window = self.auto_window() if name == "auto" else PRESETS[name]
        self.set_window(window, emit=True)

    def auto_window(self) -> Window:
        """The automatic window of the current case (percentiles), computed once per case."""
        if self.case is None:
            return Window(0.5, 1.0)
        if getattr(self, "_auto_for", None) is not self.case:
            self._auto, self._auto_for = auto_window(self.case.pixels), self.case
        return self._auto

    def apply_number_key(self, number: int) -> bool:
        """Keys 1-4 = presets, 0 = auto. True when the key did something."""
        name = PRESET_KEYS.get(number)
        if name is None or not self.supports_window:
            return False
        self.apply_preset(name)
        return True

    def capture(self) -> np.ndarray:
        """What the viewer draws, uint8 ``H W 3`` (screenshots, tests)."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """Stop timers and release VTK resources before the widget goes away."""


def dispose_viewer(viewer: QWidget | None) -> None:
    """Stop a viewer's timers, release its OpenGL windows and schedule the widget for deletion."""
    if viewer is None:
        return
    from app.viewers.canvas import VtkCanvas

    if isinstance(viewer, CaseViewer):
        viewer.shutdown()
    for canvas in viewer.findChildren(VtkCanvas):
        canvas.Finalize()
    viewer.setParent(None)
    viewer.deleteLater()


CUSTOM = "custom"  # the preset box's entry for a window that is no preset (dragged, linked, typed)
CUSTOM_LABEL = "Custom"


def preset_combo(parent: QWidget | None = None) -> QComboBox:
    """A combo box listing the window presets (item data = preset name)."""
    combo = QComboBox(parent)
    for name in ("auto", "lung", "mediastinum", "bone", "brain"):
        combo.addItem(PRESET_LABELS[name], name)
    combo.addItem(CUSTOM_LABEL, CUSTOM)
    combo.setToolTip("Window/level preset (keys 1-4, 0 = auto); Custom after a drag or a linked window")
    return combo


def show_preset(combo: QComboBox, window: Window | None, auto: Window | None = None) -> None:
    """Select the preset entry matching ``window`` ('auto' when it is ``auto``; 'Custom' for any other window),
    so the box is never blank."""
    match = next((name for name, preset in PRESETS.items() if preset == window), None)
    if match is None and auto is not None and window == auto:
        match = "auto"
    combo.blockSignals(True)
    combo.setCurrentIndex(combo.findData(match or CUSTOM))
    combo.blockSignals(False)


def format_value(value: float | tuple[float, ...] | None) -> str:
    """A pixel value for the readout: integers without decimals, RGB as a tuple."""
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return "(" + ", ".join(f"{v:.0f}" for v in value) + ")"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"

"""2D image viewer: pan/zoom, window/level by mouse drag, presets on keys 1-4 (0 = auto), readout, invert."""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.io.case import Case
from app.viewers.base import NUMBER_KEYS, CaseViewer, format_value, preset_combo, show_preset
from app.viewers.canvas import to_image_data
from app.viewers.slice_view import AXIAL, SliceView
from app.window_level import Window, auto_window, default_window

log = logging.getLogger(__name__)


class ImageViewer(CaseViewer):
    """Shows an ``image2d`` case (grey ``H W`` or RGB ``H W 3``)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = SliceView(AXIAL, left_drag="window", parent=self)
        self.presets = preset_combo(self)
        self.invert_box = QCheckBox("Invert (I)", self)
        self.fit_button = QPushButton("Fit (F)", self)
        self.readout = QLabel("", self)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        tools = QHBoxLayout()
        tools.addWidget(QLabel("Window:", self))
        tools.addWidget(self.presets)
        tools.addWidget(self.invert_box)
        tools.addWidget(self.fit_button)
        tools.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(tools)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.readout)

        self.presets.activated.connect(lambda i: self.apply_preset(self.presets.itemData(i)))
        self.invert_box.toggled.connect(self.view.set_inverted)
        self.fit_button.clicked.connect(self.view.fit)
        self.view.windowChanged.connect(self.windowChanged)
        self.view.windowChanged.connect(lambda w: show_preset(self.presets, w, self.auto_window()))
        self.view.hovered.connect(self._show_readout)
        self.view.keyPressed.connect(self._on_key)

    def set_case(self, case: Case) -> None:
        self.case = case
        pixels = case.pixels
        spacing = case.spacing if len(case.spacing) == 2 else (1.0, 1.0)
        image = to_image_data(pixels, (spacing[1], spacing[0], 1.0), color=case.is_color)
        window = Window(127.5, 255.0) if case.is_color else default_window(pixels, case.intensity, case.modality)
        full = auto_window(pixels, (0.0, 100.0))
        self.view.set_image(image, pixels, window, data_range=full.width)
        show_preset(self.presets, window, self.auto_window())
        self.readout.setText(_describe(case))

    @property
    def supports_window(self) -> bool:
        return self.case is not None

    def window(self) -> Window | None:
        return self.view.window if self.case is not None else None

    def set_window(self, window: Window, emit: bool = False) -> None:
        self.view.set_window(window, emit=emit)
        show_preset(self.presets, window, self.auto_window())

    def capture(self) -> np.ndarray:
        return self.view.grab_rgb()

    def _on_key(self, key: int, modifiers: object) -> None:
        if key in NUMBER_KEYS:
            self.apply_number_key(NUMBER_KEYS[key])
        elif key == Qt.Key.Key_I:
            self.invert_box.toggle()
        elif key == Qt.Key.Key_F:
            self.view.fit()

    def _show_readout(self, ijk: tuple[int, int, int] | None, value: object) -> None:
        if ijk is None or self.case is None:
            self.readout.setText(_describe(self.case) if self.case is not None else "")
            return
        text = f"x {ijk[0]}  y {ijk[1]}  value {format_value(value)}"
        self.readout.setText(text)
        self.statusMessage.emit(text)


def _describe(case: Case) -> str:
    h, w = case.pixels.shape[:2]
    colour = "RGB" if case.is_color else str(case.pixels.dtype)
    return f"{case.modality} image {h}x{w} (rows x columns) {colour}"

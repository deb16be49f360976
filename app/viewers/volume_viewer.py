"""3D volume viewer: axial, coronal and sagittal MPR with linked cross-hairs, plus a volume rendering.

The case's ``Z Y X`` canonical (LPS) array is wrapped once as vtkImageData (no copy) and shared by the three
planes. Left click/drag moves the cross-hair (the other two planes follow), mouse wheel / Page Up / Page Down /
arrow keys scroll slices, right drag = window/level (all planes together), keys 1-4 = CT presets, 0 = auto, I =
invert, F = fit. The volume rendering (bottom right) is built after the planes are on screen.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from engine.io.case import Case
from app.viewers.base import NUMBER_KEYS, CaseViewer, format_value, preset_combo, show_preset
from app.viewers.canvas import to_image_data
from app.viewers.slice_view import AXIAL, CORONAL, SAGITTAL, SliceView
from app.viewers.volume_render import VR_LABELS, VR_PRESETS, VolumeRenderView
from app.window_level import Window, auto_window, default_window, is_hounsfield

log = logging.getLogger(__name__)

_SLICE_KEYS = {
    int(Qt.Key.Key_PageUp): 1, int(Qt.Key.Key_PageDown): -1, int(Qt.Key.Key_Up): 1, int(Qt.Key.Key_Down): -1,
}


class VolumeViewer(CaseViewer):
    """Shows a ``volume`` case as three orthogonal planes and a volume rendering."""

    def __init__(self, parent: QWidget | None = None, volume_rendering: bool = True) -> None:
        super().__init__(parent)
        self.views = {axis: SliceView(axis, left_drag="cursor", parent=self) for axis in (AXIAL, CORONAL, SAGITTAL)}
        self.render_view = VolumeRenderView(self)
        self.presets = preset_combo(self)
        self.invert_box = QCheckBox("Invert (I)", self)
        self.vr_box = QCheckBox("3D", self)
        self.vr_box.setChecked(volume_rendering)
        self.vr_presets = QComboBox(self)
        for name in VR_PRESETS:
            self.vr_presets.addItem(VR_LABELS[name], name)
        self.readout = QLabel("", self)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        tools = QHBoxLayout()
        tools.addWidget(QLabel("Window:", self))
        tools.addWidget(self.presets)
        tools.addWidget(self.invert_box)
        tools.addSpacing(12)
        tools.addWidget(self.vr_box)
        tools.addWidget(self.vr_presets)
        tools.addStretch(1)
        grid = QGridLayout()
        grid.setSpacing(2)
        grid.addWidget(self.views[AXIAL], 0, 0)
        grid.addWidget(self.views[CORONAL], 0, 1)
        grid.addWidget(self.views[SAGITTAL], 1, 0)
        grid.addWidget(self.render_view, 1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(tools)
        layout.addLayout(grid, 1)
        layout.addWidget(self.readout)

        for view in self.views.values():
            view.show_crosshair(True)
            view.cursorMoved.connect(self._on_cursor)
            view.sliceChanged.connect(lambda index, v=view: self._on_slice(v, index))
            view.windowChanged.connect(self._on_window)
            view.hovered.connect(self._show_readout)
            view.keyPressed.connect(lambda key, mods, v=view: self._on_key(v, key))
        self.render_view.keyPressed.connect(lambda key, mods: self._on_key(self.views[AXIAL], key))
        self.presets.activated.connect(lambda i: self.apply_preset(self.presets.itemData(i)))
        self.invert_box.toggled.connect(self._set_inverted)
        self.vr_box.toggled.connect(self._toggle_rendering)
        self.vr_presets.activated.connect(lambda i: self.render_view.set_preset(self.vr_presets.itemData(i)))
        self.render_view.setVisible(volume_rendering)
        self.vr_presets.setEnabled(volume_rendering)

    # --------------------------------------------------------------------------------------------- case

    def set_case(self, case: Case) -> None:
        if case.pixels.ndim != 3:
            raise ValueError(f"volume viewer needs Z Y X grey pixels, got shape {case.pixels.shape}")
        self.case = case
        pixels = case.pixels
        spacing = case.spacing if len(case.spacing) == 3 else (1.0, 1.0, 1.0)  # Z Y X
        image = to_image_data(pixels, (spacing[2], spacing[1], spacing[0]), color=False)
        window = default_window(pixels, case.intensity, case.modality)
        data_range = auto_window(pixels, (0.0, 100.0)).width
        for view in self.views.values():
            view.set_image(image, pixels, window, data_range)
            view.set_cursor(view.cursor)
        show_preset(self.presets, window, self.auto_window())
        self.readout.setText(_describe(case))
        self._rendered_case = None
        if self.vr_box.isChecked():
            QTimer.singleShot(0, self._build_rendering)

    def showEvent(self, ev) -> None:  # noqa: ANN001
        super().showEvent(ev)
        QTimer.singleShot(0, self._build_rendering)  # a case set while hidden gets its rendering now

    def _build_rendering(self) -> None:
        case = self.case
        if case is None or getattr(self, "_rendered_case", None) is case or not self.vr_box.isChecked():
            return
        if not self.render_view.isVisible():  # built when shown (the OpenGL context must exist)
            return
        spacing = case.spacing if len(case.spacing) == 3 else (1.0, 1.0, 1.0)
        self.render_view.set_volume(case.pixels, spacing, is_hu=is_hounsfield(case.pixels, case.intensity, case.modality))
        self._rendered_case = case

    def _toggle_rendering(self, on: bool) -> None:
        self.render_view.setVisible(on)
        self.vr_presets.setEnabled(on)
        if on:
            self._build_rendering()

    # ------------------------------------------------------------------------------------ linked views

    @property
    def cursor(self) -> tuple[int, int, int]:
        """The cross-hair voxel ``(x, y, z)`` shared by the three planes."""
        return self.views[AXIAL].cursor

    def set_cursor(self, ijk: tuple[int, int, int]) -> None:
        """Move the cross-hair to voxel ``(x, y, z)``; every plane shows the slice through it."""
        for view in self.views.values():
            view.set_cursor(ijk)

    def _on_cursor(self, ijk: tuple[int, int, int]) -> None:
        self.set_cursor(ijk)

    def _on_slice(self, source: SliceView, index: int) -> None:
        ijk = list(source.cursor)
        ijk[source.normal_axis] = index
        self.set_cursor(tuple(ijk))

    def _on_window(self, window: Window) -> None:
        for view in self.views.values():
            if view.window != window:
                view.set_window(window, emit=False)
        show_preset(self.presets, window, self.auto_window())
        self.windowChanged.emit(window)

    def _set_inverted(self, inverted: bool) -> None:
        for view in self.views.values():
            view.set_inverted(inverted)

    def _on_key(self, view: SliceView, key: int) -> None:
        if key in _SLICE_KEYS:
            view.step_slice(_SLICE_KEYS[key])
        elif key in NUMBER_KEYS:
            self.apply_number_key(NUMBER_KEYS[key])
        elif key == Qt.Key.Key_I:
            self.invert_box.toggle()
        elif key == Qt.Key.Key_F:
            for each in self.views.values():
                each.fit()

    # ----------------------------------------------------------------------------------- window level

    @property
    def supports_window(self) -> bool:
        return self.case is not None

    def window(self) -> Window | None:
        return self.views[AXIAL].window if self.case is not None else None

    def set_window(self, window: Window, emit: bool = False) -> None:
        for view in self.views.values():
            view.set_window(window, emit=False)
        show_preset(self.presets, window, self.auto_window())
        if emit:
            self.windowChanged.emit(window)

    # ----------------------------------------------------------------------------------------- output

    def capture(self) -> np.ndarray:
        """The four panes tiled 2 x 2 (axial, coronal / sagittal, rendering), uint8 ``H W 3``."""
        tiles = [self.views[AXIAL].grab_rgb(), self.views[CORONAL].grab_rgb(), self.views[SAGITTAL].grab_rgb()]
        if self.render_view.isVisible():
            tiles.append(self.render_view.grab_rgb())
        else:
            tiles.append(np.zeros_like(tiles[0]))
        height = max(t.shape[0] for t in tiles)
        width = max(t.shape[1] for t in tiles)
        padded = [np.pad(t, ((0, height - t.shape[0]), (0, width - t.shape[1]), (0, 0))) for t in tiles]
        gap = np.full((height, 2, 3), 60, np.uint8)
        top = np.concatenate([padded[0], gap, padded[1]], axis=1)
        bottom = np.concatenate([padded[2], gap, padded[3]], axis=1)
        return np.concatenate([top, np.full((2, top.shape[1], 3), 60, np.uint8), bottom], axis=0)

    def _show_readout(self, ijk: tuple[int, int, int] | None, value: object) -> None:
        if ijk is None or self.case is None:
            return
        unit = " HU" if self.case.intensity == "HU" else ""
        text = f"x {ijk[0]}  y {ijk[1]}  z {ijk[2]}  value {format_value(value)}{unit}"
        self.readout.setText(text)
        self.statusMessage.emit(text)


def _describe(case: Case) -> str:
    shape = "x".join(str(n) for n in case.pixels.shape)  # Z Y X, as `m3ret inspect` and `m3ret list` print it
    spacing = "x".join(f"{s:.2g}" for s in case.spacing) if case.spacing else "?"
    return f"{case.modality} volume {shape} (slices x rows x columns), spacing {spacing} mm, {case.intensity}"

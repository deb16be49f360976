"""One plane of an image on screen: window/level, pan/zoom, slice scrolling, cross-hair and pixel readout.

The image is vtkImageData of dimensions ``(X, Y, Z)`` built from ``Z Y X`` pixels (``canvas.to_image_data``).
The plane is normal to one axis (``AXIAL`` = Z, ``CORONAL`` = Y, ``SAGITTAL`` = X), seen in the radiological
convention for canonical LPS arrays: axial from the feet with anterior up, coronal from the front, sagittal from
the patient's left, so patient left is on screen right. A 2D image or a video frame is an "axial" plane: row 0 at
the top, column 0 on the left.

Mouse: ``left_drag="window"`` (2D, video): left drag = window/level, right drag = zoom, middle or shift+left = pan,
wheel = zoom. ``left_drag="cursor"`` (MPR): left click/drag = move the cross-hair, right drag = window/level,
middle or shift+left = pan, wheel = slice (ctrl+wheel = zoom).
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QMouseEvent, QWheelEvent
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonCore import vtkLookupTable
from vtkmodules.vtkFiltersSources import vtkLineSource
from vtkmodules.vtkRenderingAnnotation import vtkCornerAnnotation
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkImageSlice,
    vtkImageSliceMapper,
    vtkPolyDataMapper,
    vtkRenderer,
)

from app.viewers.canvas import VtkCanvas
from app.window_level import Window, drag_window

log = logging.getLogger(__name__)

SAGITTAL, CORONAL, AXIAL = 0, 1, 2
PLANE_NAMES = {AXIAL: "Axial", CORONAL: "Coronal", SAGITTAL: "Sagittal"}
# camera direction of projection and view-up per plane normal (see module docstring)
_CAMERA = {
    AXIAL: ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
    CORONAL: ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    SAGITTAL: ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
}
# (horizontal, vertical) screen axes per plane normal, as image axes (0 = X, 1 = Y, 2 = Z)
_SCREEN_AXES = {AXIAL: (0, 1), CORONAL: (0, 2), SAGITTAL: (1, 2)}
# patient directions at the (left, right, top, bottom) screen edges per plane (radiological convention)
_EDGE_LABELS = {AXIAL: ("R", "L", "A", "P"), CORONAL: ("R", "L", "S", "I"), SAGITTAL: ("A", "P", "S", "I")}
_CROSSHAIR_COLORS = {AXIAL: (1.0, 0.3, 0.3), CORONAL: (0.3, 1.0, 0.3), SAGITTAL: (0.4, 0.6, 1.0)}


class SliceView(VtkCanvas):
    """A VTK canvas showing one slice of an image with the interactions listed in the module docstring."""

    windowChanged = Signal(object)  # Window, after a user drag or set_window(..., emit=True)
    cursorMoved = Signal(object)  # (x, y, z) voxel indices picked with the mouse (cursor mode)
    sliceChanged = Signal(int)  # new slice index along the plane normal
    hovered = Signal(object, object)  # (x, y, z) voxel indices or None, pixel value (float / tuple) or None

    def __init__(
        self,
        normal_axis: int = AXIAL,
        left_drag: Literal["window", "cursor"] = "window",
        parent=None,
    ) -> None:
        super().__init__(parent)
        self.normal_axis = normal_axis
        self.left_drag = left_drag
        self._pixels: np.ndarray | None = None  # Z Y X [C], for the readout
        self._image: vtkImageData | None = None
        self._window = Window(0.5, 1.0)
        self._data_range = 1.0
        self._slice = 0
        self._inverted = False
        self._cursor = (0, 0, 0)
        self._drag: dict | None = None
        self._user_camera = False  # True once the user zoomed or panned: resizing then keeps their view
        self.label = PLANE_NAMES[normal_axis] if left_drag == "cursor" else ""
        self.show_directions = left_drag == "cursor"  # volumes are canonical LPS: edges have patient directions

        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        self.overlay = vtkRenderer()  # cross-hair on top, same camera
        self.overlay.SetLayer(1)
        self.overlay.InteractiveOff()
        self.overlay.SetActiveCamera(self.renderer.GetActiveCamera())
        window = self.GetRenderWindow()
        window.SetNumberOfLayers(2)
        window.AddRenderer(self.renderer)
        window.AddRenderer(self.overlay)

        self.mapper = vtkImageSliceMapper()
        self.mapper.SetOrientation(normal_axis)
        self.slice_actor = vtkImageSlice()
        self.slice_actor.SetMapper(self.mapper)
        self.property = self.slice_actor.GetProperty()
        self.property.SetInterpolationTypeToLinear()
        self._invert_lut = _inverted_grey_lut()

        self.annotation = vtkCornerAnnotation()
        self.annotation.SetMaximumFontSize(14)
        self.annotation.SetMinimumFontSize(9)
        self.annotation.GetTextProperty().SetColor(1.0, 0.85, 0.2)
        self.overlay.AddViewProp(self.annotation)

        self._lines = [vtkLineSource(), vtkLineSource()]
        self._line_actors = []
        for line in self._lines:
            mapper = vtkPolyDataMapper()
            mapper.SetInputConnection(line.GetOutputPort())
            actor = vtkActor()
            actor.SetMapper(mapper)
            actor.GetProperty().SetColor(*_CROSSHAIR_COLORS[normal_axis])
            actor.GetProperty().SetLineWidth(1.0)
            actor.GetProperty().SetOpacity(0.8)
            actor.SetVisibility(False)
            actor.PickableOff()
            self.overlay.AddActor(actor)
            self._line_actors.append(actor)

    # ----------------------------------------------------------------------------------------- content

    def set_image(self, image: vtkImageData, pixels: np.ndarray, window: Window, data_range: float) -> None:
        """Show ``image`` (built from ``pixels``, ``Z Y X [C]``) at its middle slice with ``window``."""
        self._image = image
        self._pixels = pixels if pixels.ndim >= 3 and pixels.shape[0] == image.GetDimensions()[2] else pixels[None]
        self._data_range = max(float(data_range), 1e-6)
        self.mapper.SetInputData(image)
        if self.renderer.GetViewProps().GetNumberOfItems() == 0:
            self.renderer.AddViewProp(self.slice_actor)
        dims = image.GetDimensions()
        self._cursor = tuple(d // 2 for d in dims)
        self._slice = dims[self.normal_axis] // 2
        self.mapper.SetSliceNumber(self._slice)
        self.set_window(window, emit=False)
        self.fit()
        self._update_crosshair()

    @property
    def has_image(self) -> bool:
        return self._image is not None

    @property
    def slice_count(self) -> int:
        return self._image.GetDimensions()[self.normal_axis] if self._image is not None else 0

    @property
    def slice_index(self) -> int:
        return self._slice

    def set_slice(self, index: int, emit: bool = True) -> None:
        """Show slice ``index`` along the plane normal (clamped)."""
        if self._image is None:
            return
        index = int(np.clip(index, 0, self.slice_count - 1))
        if index == self._slice:
            return
        self._slice = index
        self.mapper.SetSliceNumber(index)
        self._update_annotation()
        self._update_crosshair()
        self.request_render()
        if emit:
            self.sliceChanged.emit(index)

    def step_slice(self, delta: int) -> None:
        self.set_slice(self._slice + delta)

    # ----------------------------------------------------------------------------------------- window

    @property
    def window(self) -> Window:
        return self._window

    def set_window(self, window: Window, emit: bool = True) -> None:
        """Apply a window (level, width); emits ``windowChanged`` when ``emit``."""
        self._window = Window(float(window.level), max(float(window.width), 1e-6))
        self.property.SetColorLevel(self._window.level)
        self.property.SetColorWindow(self._window.width)
        self._update_annotation()
        self.request_render()
        if emit:
            self.windowChanged.emit(self._window)

    @property
    def inverted(self) -> bool:
        return self._inverted

    def set_inverted(self, inverted: bool) -> None:
        """Show dark as bright and bright as dark."""
        self._inverted = bool(inverted)
        self.property.SetLookupTable(self._invert_lut if inverted else None)
        self.property.SetUseLookupTableScalarRange(False)
        self.request_render()

    # ----------------------------------------------------------------------------------------- camera

    def fit(self) -> None:
        """Zoom and centre so that the whole plane fits the canvas."""
        if self._image is None:
            return
        bounds = self._image.GetBounds()
        centre = [(bounds[2 * a] + bounds[2 * a + 1]) / 2.0 for a in range(3)]
        extent = [max(bounds[2 * a + 1] - bounds[2 * a], 1e-3) for a in range(3)]
        horizontal, vertical = _SCREEN_AXES[self.normal_axis]
        width, height = max(self.width(), 1), max(self.height(), 1)
        scale = max(extent[vertical] / 2.0, extent[horizontal] / 2.0 * height / width) * 1.02
        direction, up = _CAMERA[self.normal_axis]
        distance = 4.0 * max(extent) + 100.0
        camera = self.renderer.GetActiveCamera()
        camera.ParallelProjectionOn()
        camera.SetFocalPoint(*centre)
        camera.SetPosition(*(c - d * distance for c, d in zip(centre, direction)))
        camera.SetViewUp(*up)
        camera.SetParallelScale(scale)
        camera.SetClippingRange(1.0, 2.0 * distance + max(extent))
        self._user_camera = False
        self.request_render()

    def resizeEvent(self, ev) -> None:  # noqa: ANN001
        super().resizeEvent(ev)
        if not self._user_camera:
            self.fit()

    def zoom(self, factor: float) -> None:
        """Magnify by ``factor`` (> 1 zooms in)."""
        self._user_camera = True
        camera = self.renderer.GetActiveCamera()
        camera.SetParallelScale(camera.GetParallelScale() / max(factor, 1e-3))
        self.request_render()

    @property
    def zoom_scale(self) -> float:
        return float(self.renderer.GetActiveCamera().GetParallelScale())

    def pan(self, dx_pixels: float, dy_pixels: float) -> None:
        """Move the image by screen pixels (x right, y down)."""
        self._user_camera = True
        camera = self.renderer.GetActiveCamera()
        mm_per_pixel = 2.0 * camera.GetParallelScale() / max(self.height(), 1)
        horizontal, vertical = _SCREEN_AXES[self.normal_axis]
        right = np.cross(_CAMERA[self.normal_axis][0], _CAMERA[self.normal_axis][1])
        up = np.asarray(_CAMERA[self.normal_axis][1])
        shift = (-dx_pixels * right + dy_pixels * up) * mm_per_pixel
        camera.SetFocalPoint(*(np.asarray(camera.GetFocalPoint()) + shift))
        camera.SetPosition(*(np.asarray(camera.GetPosition()) + shift))
        self.request_render()

    # ----------------------------------------------------------------------------------------- cursor

    @property
    def cursor(self) -> tuple[int, int, int]:
        return self._cursor

    def set_cursor(self, ijk: tuple[int, int, int]) -> None:
        """Place the cross-hair on voxel ``(x, y, z)`` and show the slice through it."""
        self._cursor = tuple(int(v) for v in ijk)
        self.set_slice(self._cursor[self.normal_axis], emit=False)
        self._update_crosshair()
        self.request_render()

    def show_crosshair(self, visible: bool) -> None:
        for actor in self._line_actors:
            actor.SetVisibility(visible)
        self.request_render()

    def display_to_index(self, x: float, y: float) -> tuple[int, int, int] | None:
        """Voxel ``(x, y, z)`` under the Qt widget position ``(x, y)``, or None outside the image."""
        if self._image is None:
            return None
        self.renderer.SetDisplayPoint(float(x), float(self.height() - 1 - y), 0.0)
        self.renderer.DisplayToWorld()
        world = self.renderer.GetWorldPoint()
        if world[3] == 0:
            return None
        spacing = self._image.GetSpacing()
        dims = self._image.GetDimensions()
        index = [int(round(world[a] / world[3] / spacing[a])) for a in range(3)]
        index[self.normal_axis] = self._slice
        if any(i < 0 or i >= d for i, d in zip(index, dims)):
            return None
        return (index[0], index[1], index[2])

    def value_at(self, ijk: tuple[int, int, int]) -> float | tuple[float, ...] | None:
        """Pixel value at voxel ``(x, y, z)`` (a tuple for RGB)."""
        if self._pixels is None:
            return None
        value = self._pixels[ijk[2], ijk[1], ijk[0]]
        return tuple(float(v) for v in value) if np.ndim(value) else float(value)

    # ----------------------------------------------------------------------------------------- mouse

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        self.setFocus()
        pos = ev.position()
        button = ev.button()
        shift = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and shift):
            mode = "pan"
        elif button == Qt.MouseButton.LeftButton:
            mode = self.left_drag
        elif button == Qt.MouseButton.RightButton:
            mode = "window" if self.left_drag == "cursor" else "zoom"
        else:
            return
        self._drag = {"mode": mode, "start": QPointF(pos), "last": QPointF(pos), "window": self._window}
        if mode == "cursor":
            self._pick_cursor(pos.x(), pos.y())

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        pos = ev.position()
        drag = self._drag
        if drag is None:
            self._report_hover(pos.x(), pos.y())
            return
        dx, dy = pos.x() - drag["last"].x(), pos.y() - drag["last"].y()
        drag["last"] = QPointF(pos)
        if drag["mode"] == "window":
            total_dx, total_dy = pos.x() - drag["start"].x(), pos.y() - drag["start"].y()
            self.set_window(drag_window(drag["window"], total_dx, total_dy, self._data_range))
        elif drag["mode"] == "pan":
            self.pan(dx, dy)
        elif drag["mode"] == "zoom":
            self.zoom(1.01 ** (-dy))
        elif drag["mode"] == "cursor":
            self._pick_cursor(pos.x(), pos.y())
        self._report_hover(pos.x(), pos.y())

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        self._drag = None

    def wheelEvent(self, ev: QWheelEvent) -> None:
        steps = ev.angleDelta().y() / 120.0
        if steps == 0:
            return
        ctrl = bool(ev.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if self.left_drag == "cursor" and not ctrl:
            self.step_slice(int(round(steps)) or (1 if steps > 0 else -1))
        else:
            self.zoom(1.1**steps)

    def leaveEvent(self, ev) -> None:  # noqa: ANN001
        self.hovered.emit(None, None)

    def enterEvent(self, ev) -> None:  # noqa: ANN001
        pass

    def _pick_cursor(self, x: float, y: float) -> None:
        ijk = self.display_to_index(x, y)
        if ijk is None:
            return
        self._cursor = ijk
        self._update_crosshair()
        self.request_render()
        self.cursorMoved.emit(ijk)

    def _report_hover(self, x: float, y: float) -> None:
        ijk = self.display_to_index(x, y)
        value = self.value_at(ijk) if ijk is not None else None
        self.hovered.emit(ijk, value)

    # ----------------------------------------------------------------------------------------- drawing

    def _update_crosshair(self) -> None:
        if self._image is None:
            return
        spacing = self._image.GetSpacing()
        bounds = self._image.GetBounds()
        point = [self._cursor[a] * spacing[a] for a in range(3)]
        point[self.normal_axis] = self._slice * spacing[self.normal_axis]
        horizontal, vertical = _SCREEN_AXES[self.normal_axis]
        for line, axis in zip(self._lines, (horizontal, vertical)):
            start, end = list(point), list(point)
            start[axis], end[axis] = bounds[2 * axis], bounds[2 * axis + 1]
            line.SetPoint1(*start)
            line.SetPoint2(*end)
            line.Modified()

    def _update_annotation(self) -> None:
        lower_left = f"W {self._window.width:.0f}  L {self._window.level:.0f}"
        if self._data_range < 20:
            lower_left = f"W {self._window.width:.3g}  L {self._window.level:.3g}"
        self.annotation.SetText(0, lower_left)
        upper_left = self.label
        if self._image is not None and self.slice_count > 1:
            upper_left = f"{self.label} {self._slice + 1}/{self.slice_count}".strip()
        self.annotation.SetText(2, upper_left)
        if self.show_directions:
            left, right, top, bottom = _EDGE_LABELS[self.normal_axis]
            for position, text in ((6, left), (5, right), (7, top), (4, bottom)):  # vtkCornerAnnotation edges
                self.annotation.SetText(position, text)


def _inverted_grey_lut() -> vtkLookupTable:
    lut = vtkLookupTable()
    lut.SetNumberOfTableValues(256)
    lut.SetHueRange(0.0, 0.0)
    lut.SetSaturationRange(0.0, 0.0)
    lut.SetValueRange(1.0, 0.0)
    lut.SetRampToLinear()
    lut.Build()
    return lut

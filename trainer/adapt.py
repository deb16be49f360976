"""Continued self-supervision of the warm-started frame encoder (experiment ``imagenet_lite``, objective
``frame_simdino``).

``adapt(cfg, run_dir)``: an ImageNet EfficientNet-Lite ``FrameClipEncoder`` is trained without labels on the
medical train clips (``trainer.clip_cache``, read through engine.io + engine.preprocess like inference) with
``trainer.objectives.frame_simdino``. Each step draws a modality-balanced batch of clips, takes one frame of each
(the image of a 2D clip, a random slice or frame of a volume or video) and a neighbouring frame (within
``frames.neighbour_max`` of it) as the second positive view, then makes global and local crops with intensity
augmentation (``trainer.augment``). A validation split carved from ``train`` by patient (never ``test``, never
trained on) is scored every ``train.val_every`` steps with the retrieval metrics; the best teacher by the mean over
modalities of macro P@10 is kept as ``checkpoints/best.pt``. Rank 0 only (the frame recipe is cheap enough for one
process; the ViT recipe in ``trainer.train`` is the one run under torchrun). Works on CUDA unchanged (bf16 autocast).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from trainer.augment import IntensitySpec, ViewSpec, intensity_augment, random_crop
from trainer.config import save_config
from trainer.frame_encoder import FrameClipEncoder
from trainer.objectives.frame_simdino import FrameSimDINO
from trainer.retrieval_metrics import MAX_ITEMS_PER_PATIENT, retrieval_metrics
from trainer.train import append_metrics, lr_factor, teacher_momentum

log = logging.getLogger(__name__)

METRIC_FIELDS = ("step", "lr", "loss", "distance", "coding_rate", "anchor", "grad_norm", "momentum",
                 "frames_per_s", "elapsed_s", "val_score")


def build_encoder_from_config(cfg: dict[str, Any], pretrained: bool = True) -> FrameClipEncoder:
    """The frame encoder the config describes (``model.arch`` = ``efficientnet-lite0/1/2``)."""
    m = {"layers": ["head"], **cfg["model"]}
    return FrameClipEncoder(m["arch"], pretrained=pretrained, pooling=m["pooling"], frame_stride=m["frame_stride"],
                            layers=tuple(m["layers"]))


def validation_mask(patients: list[str], paths: list[str], fraction: float, seed: int = 0) -> np.ndarray:
    """True for the rows of the validation split: whole patients (hash of the id) where ids exist, else rows."""
    counts: dict[str, int] = {}
    for p in patients:
        counts[p] = counts.get(p, 0) + 1
    keys = [p if p and counts[p] <= MAX_ITEMS_PER_PATIENT else path for p, path in zip(patients, paths)]
    digests = [int(hashlib.sha256(f"{seed}:{k}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF for k in keys]
    return np.asarray(digests) < fraction


class FrameViews:
    """Global/local frame views of a batch of uint8 clips ``C T H W`` (see the module docstring)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        d = cfg["simdino"]
        self.global_view = ViewSpec(d["global_size"], 1, tuple(d["global_scale"]))
        self.local_view = ViewSpec(d["local_size"], 1, tuple(d["local_scale"]))
        self.n_global, self.n_local = d["n_global"], d["n_local"]
        self.neighbour_max = cfg["frames"]["neighbour_max"]
        self.intensity = IntensitySpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["augment"].items()})

    def frame_pair(self, clip: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Two frames ``3 1 H W`` in [0, 1]: a random frame and a neighbour (the same image for 2D clips)."""
        t = clip.shape[1]
        first = int(rng.integers(t))
        second = int(np.clip(first + rng.integers(-self.neighbour_max, self.neighbour_max + 1), 0, t - 1))
        frames = torch.from_numpy(clip[:, [first, second]].astype(np.float32) / 255.0)  # C 2 H W
        if frames.shape[0] == 1:
            frames = frames.expand(3, -1, -1, -1)
        return frames[:, :1], frames[:, 1:]

    def __call__(self, clips: list[np.ndarray], rng: np.random.Generator) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``n_global`` and ``n_local`` views, each ``B 3 S S``."""
        pairs = [self.frame_pair(c, rng) for c in clips]
        globals_ = [[] for _ in range(self.n_global)]
        locals_ = [[] for _ in range(self.n_local)]
        for a, b in pairs:
            for v in range(self.n_global):
                src = a if v % 2 == 0 else b
                globals_[v].append(intensity_augment(random_crop(src, self.global_view), self.intensity)[:, 0])
            for v in range(self.n_local):
                src = a if v % 2 == 0 else b
                locals_[v].append(intensity_augment(random_crop(src, self.local_view), self.intensity)[:, 0])
        return [torch.stack(g) for g in globals_], [torch.stack(g) for g in locals_]


@torch.inference_mode()
def embed_pooled(encoder: FrameClipEncoder, clip_set: Any, indices: list[int], device: torch.device) -> np.ndarray:
    """Pooled clip features (before any projection) of ``indices``, float32 ``N P``, batched by clip length."""
    encoder.eval()
    out = np.zeros((len(indices), encoder.pooled_dim), dtype=np.float32)
    position = {i: k for k, i in enumerate(indices)}
    by_length: dict[int, list[int]] = {}
    for i in indices:
        by_length.setdefault(clip_set.length(i), []).append(i)
    for t, members in by_length.items():
        size = 64 if t <= 2 else 8
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            clips = torch.from_numpy(clip_set.batch(chunk)).to(device)  # B 3 T H W
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                pooled = encoder.pooled(clips)
            out[[position[i] for i in chunk]] = pooled.float().cpu().numpy()
    return out


def validation_score(encoder: FrameClipEncoder, clip_set: Any, indices: list[int], device: torch.device) -> dict:
    """Macro P@10 per modality on the validation clips (leave-one-out, same-patient items excluded); ``score`` =
    their mean."""
    features = embed_pooled(encoder, clip_set, indices, device)
    per_modality = macro_p10_per_modality(features, [clip_set.rows[i] for i in indices])
    return {"score": float(np.mean(list(per_modality.values()))), "per_modality": per_modality}


def macro_p10_per_modality(features: np.ndarray, rows: list[Any]) -> dict[str, float]:
    """Macro P@10 per modality of ``features`` ``N P`` (L2-normalised here; leave-one-out, same-patient items
    excluded) for the manifest ``rows`` they belong to; modalities with no scored query are left out."""
    features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    metrics = retrieval_metrics(features, [r.label for r in rows], [r.modality for r in rows],
                                [r.dataset for r in rows], patients=[r.patient for r in rows])
    return {m: v["macro"]["P@10"] for m, v in metrics["per_modality"].items() if v["n_scored"]}


def load_adapt_data(cfg: dict[str, Any]) -> tuple[Any, list[int], list[int]]:
    """The train clip set and (training indices, validation indices); excluded modalities in neither."""
    from dataclasses import replace

    from engine.config import shared_data_dir
    from engine.preprocess import DEFAULT_PARAMS
    from trainer.clip_cache import load_clip_set

    d = cfg["data"]
    manifest = d["manifest"]
    if manifest is None:
        found = shared_data_dir()
        if found is None:
            raise FileNotFoundError("no data.manifest given and no shared data found (set M3RET_DATA)")
        manifest = found / "manifest.csv"
    params = replace(DEFAULT_PARAMS, size=cfg["model"]["img_size"])
    clip_set = load_clip_set(manifest, d["split"], params, cache_dir=d["cache_dir"], workers=d["read_workers"])
    excluded = set(d["exclude_modalities"])
    usable = [i for i, r in enumerate(clip_set.rows) if r.modality not in excluded]
    val = validation_mask([clip_set.rows[i].patient for i in usable], [str(clip_set.rows[i].path) for i in usable],
                          d["val_fraction"], cfg["train"]["seed"])
    labelled = np.array([clip_set.rows[i].label != "unlabelled" for i in usable])
    train_idx = [i for i, v in zip(usable, val) if not v]
    val_idx = [i for i, v, lab in zip(usable, val, labelled) if v and lab]
    per_dataset: dict[str, int] = {}  # scored clips capped per dataset: validation stays cheap and balanced
    capped = []
    for i in val_idx:
        name = clip_set.rows[i].dataset
        per_dataset[name] = per_dataset.get(name, 0) + 1
        if per_dataset[name] <= d["val_max_per_dataset"]:
            capped.append(i)
    return clip_set, train_idx, capped


def adapt(cfg: dict[str, Any], run_dir: str | Path) -> Path:
    """Run the recipe in ``run_dir`` (resuming from ``checkpoints/last.pt``); returns the best checkpoint's path."""
    run_dir = Path(run_dir)
    t_cfg, o_cfg = cfg["train"], cfg["optim"]
    device = torch.device("cuda" if t_cfg["device"] == "auto" and torch.cuda.is_available() else
                          ("cpu" if t_cfg["device"] == "auto" else t_cfg["device"]))
    save_config(cfg, run_dir / "config.json")
    torch.manual_seed(t_cfg["seed"])
    d = cfg["simdino"]
    encoder = build_encoder_from_config(cfg)
    encoder.freeze_all_but_last(cfg["model"]["trainable_blocks"])
    model = FrameSimDINO(encoder, d["hidden_dim"], d["out_dim"], d["eps"], d["gamma"],
                         cfg["anchor"]["weight"]).to(device)
    head_params = list(model.student_head.parameters())
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in model.encoder.parameters() if p.requires_grad], "lr": o_cfg["lr"] * o_cfg["backbone_lr_scale"]},
         {"params": head_params, "lr": o_cfg["lr"]}],
        weight_decay=o_cfg["weight_decay"], betas=tuple(o_cfg["betas"]))
    total = t_cfg["steps"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, o_cfg["warmup_steps"], total, o_cfg["min_lr"] / o_cfg["lr"]))
    clip_set, train_idx, val_idx = load_adapt_data(cfg)
    modalities = [clip_set.rows[i].modality for i in train_idx]
    counts = {m: modalities.count(m) for m in set(modalities)}
    weights = np.array([1.0 / counts[m] for m in modalities])
    weights /= weights.sum()
    views = FrameViews(cfg)
    rng = np.random.default_rng(t_cfg["seed"])
    ckpt_dir = run_dir / "checkpoints"
    step, best = 0, -math.inf
    last = ckpt_dir / "last.pt"
    if last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, best = state["step"], state["best"]
        rng.bit_generator.state = state["rng"]
        log.info("resumed from %s at step %d", last, step)
    log.info("frame_simdino %s: %d training clips (%s), %d validation clips, device %s", cfg["model"]["arch"],
             len(train_idx), ", ".join(f"{m} {n}" for m, n in sorted(counts.items())), len(val_idx), device)

    def checkpoint(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "step": step, "best": best, "config": cfg,
                    "rng": rng.bit_generator.state, "teacher": model.teacher_encoder.state_dict()}, tmp)
        tmp.replace(path)

    if step == 0:  # the ImageNet initialisation is the score to beat: best.pt starts as it
        result = validation_score(model.teacher_encoder, clip_set, val_idx, device)
        best = result["score"]
        log.info("step 0 (ImageNet init): validation macro P@10 %.4f %s", best,
                 json.dumps({m: round(v, 3) for m, v in result["per_modality"].items()}))
        checkpoint(ckpt_dir / "best.pt")
    bar = tqdm(total=total, initial=step, desc="adapt", unit="step", mininterval=10.0)
    start = time.perf_counter()
    batch = cfg["data"]["batch_size_2d"]
    while step < total:
        t0 = time.perf_counter()
        picked = rng.choice(len(train_idx), size=batch, replace=False, p=weights)
        clips = [clip_set.clip_uint8(train_idx[int(k)]) for k in picked]
        global_views, local_views = views(clips, rng)
        global_views = [v.to(device) for v in global_views]
        local_views = [v.to(device) for v in local_views]
        model.train()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            losses = model(global_views, local_views)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                                   o_cfg["clip_grad"])
        optimizer.step()
        scheduler.step()
        momentum = teacher_momentum(step, total, d["momentum"])
        model.update_teacher(momentum)
        step += 1
        if not math.isfinite(float(losses["loss"].detach())):
            raise FloatingPointError(f"loss is {float(losses['loss'].detach())} at step {step}")
        row = {"step": step, "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm), "momentum": momentum,
               "frames_per_s": batch / (time.perf_counter() - t0), "elapsed_s": time.perf_counter() - start,
               **{k: float(v.detach()) for k, v in losses.items()}}
        timed_out = t_cfg["max_minutes"] > 0 and time.perf_counter() - start > 60 * t_cfg["max_minutes"]
        if step % t_cfg["val_every"] == 0 or step == total or timed_out:
            result = validation_score(model.teacher_encoder, clip_set, val_idx, device)
            row["val_score"] = result["score"]
            log.info("step %d: validation macro P@10 %.4f %s", step, result["score"],
                     json.dumps({m: round(v, 3) for m, v in result["per_modality"].items()}))
            if result["score"] > best:
                best = result["score"]
                checkpoint(ckpt_dir / "best.pt")
            checkpoint(last)
        append_metrics(run_dir / "metrics.csv", row, METRIC_FIELDS)
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.4f}")
        if timed_out:
            log.warning("stopped at step %d of %d: max_minutes %.1f reached", step, total, t_cfg["max_minutes"])
            break
    bar.close()
    return ckpt_dir / "best.pt"

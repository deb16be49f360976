"""Pretraining loop: MAE, SimDINO or both on one encoder; DDP, bf16 on CUDA, checkpoints with exact resume.

``pretrain(cfg, run_dir)`` runs under ``torchrun`` (gloo on CPU, NCCL on CUDA) or as a plain process. Each step
draws a batch of equal-length clips (2D or 3D, modality-balanced), augments it in the main process (the clip
cache is in memory and augmentation is a few tensor ops, so loader workers would only add copies; all randomness
comes from RNGs whose states are checkpointed, which makes resume exact), computes the summed losses, clips
gradients and steps AdamW on a warm-up + cosine schedule. SimDINO's teacher follows the student by EMA with a
cosine momentum schedule. Rank 0 shows a tqdm bar, appends ``metrics.csv`` and writes checkpoints.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from trainer.augment import IntensitySpec, MultiCropAugment, ViewSpec
from trainer.config import save_config
from trainer.distributed import DistInfo, all_gather_objects, barrier, cleanup, init_distributed
from trainer.model import VisionTransformer, build_encoder
from trainer.objectives.distill import DistillHead
from trainer.objectives.mae import MAEDecoder
from trainer.objectives.simdino import SimDINOHead

log = logging.getLogger(__name__)

OBJECTIVES = ("mae", "simdino", "mae+simdino")
METRIC_FIELDS = (
    "step", "frames", "batch", "lr", "loss", "loss_mae", "loss_simdino", "loss_distill", "distance", "coding_rate",
    "grad_norm", "momentum", "clips_per_s", "elapsed_s",
)


class PretrainModel(nn.Module):
    """The shared encoder plus the parts each objective adds (MAE decoder; SimDINO head and EMA teacher)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        objective = cfg["objective"]
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
        m, mae, dino = cfg["model"], cfg["mae"], cfg["simdino"]
        self.encoder: VisionTransformer = build_encoder(m["arch"], img_size=m["img_size"], max_frames=m["max_frames"])
        self.mae_weight = float(mae["weight"])
        self.simdino_weight = float(dino["weight"])
        self.mae = None
        self.simdino = None
        if "mae" in objective.split("+"):
            self.mae = MAEDecoder(
                self.encoder, mae["decoder_dim"], mae["decoder_depth"], mae["decoder_heads"],
                mae["mask_ratio_2d"], mae["mask_ratio_3d"], mae["norm_pix_loss"],
            )
        if "simdino" in objective.split("+"):
            self.simdino = SimDINOHead(self.encoder, dino["hidden_dim"], dino["out_dim"], dino["eps"], dino["gamma"])
        distill = cfg["distill"]
        self.distill_weight = float(distill["weight"])
        self.distill = None
        if distill["teacher"]:  # the head maps to the teacher's embedding size, read from its metadata
            from engine.model_format import META_EMBED_DIM
            from trainer.export import read_metadata

            teacher_dim = int(read_metadata(distill["teacher"])[META_EMBED_DIM])
            self.distill = DistillHead(self.encoder.embed_dim, teacher_dim)

    def forward(
        self,
        mae_input: torch.Tensor | None = None,
        global_views: list[torch.Tensor] | None = None,
        local_views: list[torch.Tensor] | None = None,
        distill_input: torch.Tensor | None = None,
        distill_target: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Losses of one batch; ``loss`` is the weighted sum that is back-propagated."""
        out: dict[str, torch.Tensor] = {}
        total = 0.0
        if self.mae is not None and mae_input is not None:
            out["loss_mae"] = self.mae(self.encoder, mae_input)
            total = total + self.mae_weight * out["loss_mae"]
        if self.simdino is not None and global_views is not None:
            loss, distance, rate = self.simdino(self.encoder, global_views, local_views or [])
            out.update(loss_simdino=loss, distance=distance, coding_rate=rate)
            total = total + self.simdino_weight * loss
        if self.distill is not None and distill_input is not None:
            out["loss_distill"] = self.distill(self.encoder, distill_input, distill_target)
            total = total + self.distill_weight * out["loss_distill"]
        out["loss"] = total
        return out

    def export_encoder(self, use_teacher: bool = True) -> VisionTransformer:
        """The encoder to ship: the EMA teacher when SimDINO trained one (and asked), else the student."""
        if use_teacher and self.simdino is not None:
            return self.simdino.teacher_encoder
        return self.encoder


def build_augment(cfg: dict[str, Any]) -> MultiCropAugment:
    """The view generator described by the config."""
    d, m = cfg["simdino"], cfg["mae"]
    time_scale = tuple(d["time_scale"])
    return MultiCropAugment(
        global_view=ViewSpec(d["global_size"], d["global_frames"], tuple(d["global_scale"]), time_scale),
        local_view=ViewSpec(d["local_size"], d["local_frames"], tuple(d["local_scale"]), time_scale),
        mae_view=ViewSpec(m["view_size"], m["view_frames"], tuple(m["view_scale"]), time_scale),
        n_global=d["n_global"],
        n_local=d["n_local"],
        intensity=IntensitySpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["augment"].items()}),
    )


def make_inputs(model: PretrainModel, batch: torch.Tensor, augment: MultiCropAugment) -> dict[str, Any]:
    """Augmented views of a batch ``B 3 T H W`` for the objectives the model trains."""
    inputs: dict[str, Any] = {}
    if model.mae is not None:
        inputs["mae_input"] = augment.mae(batch)
    if model.simdino is not None:
        inputs["global_views"], inputs["local_views"] = augment.multi_crop(batch)
    return inputs


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases, norms, positional embeddings and tokens."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or "pos" in name or "token" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine down to ``min_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def teacher_momentum(step: int, total: int, base: float) -> float:
    """EMA momentum rising from ``base`` to 1 on a cosine."""
    return 1 - (1 - base) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total))))


def build_optimizer(
    model: PretrainModel, cfg: dict[str, Any]
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW + warm-up/cosine schedule."""
    o = cfg["optim"]
    optimizer = torch.optim.AdamW(param_groups(model, o["weight_decay"]), lr=o["lr"], betas=tuple(o["betas"]))
    total, warmup, min_ratio = cfg["train"]["steps"], o["warmup_steps"], o["min_lr"] / o["lr"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, total, min_ratio))
    return optimizer, scheduler


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    inputs: dict[str, Any],
    clip_grad: float,
    momentum: float,
    amp: bool,
) -> dict[str, float]:
    """Forward, backward, clip, step; update the EMA teacher. ``model`` may be DDP-wrapped."""
    core: PretrainModel = model.module if isinstance(model, DistributedDataParallel) else model
    device = next(core.parameters()).device
    model.train()
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
        losses = model(**inputs)
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(
        [p for p in core.parameters() if p.requires_grad], clip_grad if clip_grad > 0 else float("inf")
    )
    optimizer.step()
    scheduler.step()
    if core.simdino is not None:
        core.simdino.update_teacher(core.encoder, momentum)
    out = {k: float(v.detach()) for k, v in losses.items()}
    out["grad_norm"] = float(grad_norm)
    return out


# ---------------------------------------------------------------- data


def load_training_clips(cfg: dict[str, Any]) -> Any:
    """The training clips: synthetic (``data.synthetic`` > 0) or the manifest's split, never excluded modalities."""
    d = cfg["data"]
    if d["synthetic"]:
        from trainer.synthetic import SyntheticClips

        return SyntheticClips(int(d["synthetic"]), int(d["synthetic_size"]), cfg["train"]["seed"])
    from engine.config import shared_data_dir
    from trainer.clip_cache import load_clip_set

    manifest = d["manifest"]
    if manifest is None:
        found = shared_data_dir()
        if found is None:
            raise FileNotFoundError("no data.manifest given and no shared data found (set M3RET_DATA)")
        manifest = found / "manifest.csv"
    return load_clip_set(
        manifest, d["split"], exclude_modalities=d["exclude_modalities"], cache_dir=d["cache_dir"],
        workers=d["read_workers"],
    )


def build_sampler(data: Any, cfg: dict[str, Any], rank: int) -> Any:
    from trainer.sampler import BalancedBatchSampler

    d = cfg["data"]
    lengths = [data.length(i) for i in range(len(data))]
    sizes = {t: d["batch_size_2d"] if t <= 2 else d["batch_size_3d"] for t in set(lengths)}
    return BalancedBatchSampler(lengths, data.modalities, sizes, d["modality_weights"], cfg["train"]["seed"], rank)


# ---------------------------------------------------------------- checkpoints


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, core: PretrainModel, optimizer, scheduler, step: int, cfg, sampler_states, rngs) -> None:
    """Everything needed to continue exactly: weights (student, teacher, heads), optimizer, schedule, RNGs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": core.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "config": cfg,
            "sampler": sampler_states,  # one per rank
            "rng": rngs,  # one per rank
        },
        tmp,
    )
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint dict (CPU tensors)."""
    return torch.load(Path(path), map_location="cpu", weights_only=False)


# ---------------------------------------------------------------- the loop


def pretrain(cfg: dict[str, Any], run_dir: str | Path) -> Path:
    """Train per ``cfg`` in ``run_dir`` (resuming from its last checkpoint if present); returns the last checkpoint."""
    run_dir = Path(run_dir)
    info = init_distributed(cfg["train"]["device"])
    try:
        last = _pretrain(cfg, run_dir, info)
        barrier(info)  # all ranks finished before any tears gloo down (a peer leaving early aborts the other)
        return last
    finally:
        cleanup(info)


def _pretrain(cfg: dict[str, Any], run_dir: Path, info: DistInfo) -> Path:
    t_cfg = cfg["train"]
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.pt"
    resume = Path(t_cfg["resume"]) if t_cfg["resume"] else (last if last.is_file() else None)
    if info.is_main:
        save_config(cfg, run_dir / "config.json")
    torch.manual_seed(t_cfg["seed"])  # identical initial weights on every rank
    model = PretrainModel(cfg).to(info.device)
    optimizer, scheduler = build_optimizer(model, cfg)
    data = load_training_clips(cfg)
    sampler = build_sampler(data, cfg, info.rank)
    augment = build_augment(cfg)
    seed = t_cfg["seed"] + 1000 * (info.rank + 1)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    targets = None
    if cfg["distill"]["teacher"]:  # distilled_vit: the adapted encoder's embeddings of every clip, computed once
        from trainer.teacher_targets import teacher_targets

        targets = teacher_targets(data, cfg["distill"]["teacher"], cfg["data"]["cache_dir"])
    step = 0
    if resume is not None:
        ckpt = load_checkpoint(resume)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        step = int(ckpt["step"])
        if len(ckpt["rng"]) == info.world_size:
            sampler.load_state_dict(ckpt["sampler"][info.rank])
            set_rng_state(ckpt["rng"][info.rank])
        else:
            log.warning("%s: saved with %d ranks, running %d: RNGs reseeded", resume, len(ckpt["rng"]), info.world_size)
        log.info("resumed from %s at step %d", resume, step)
    ddp: nn.Module = DistributedDataParallel(model) if info.enabled else model
    if info.is_main:
        n_params = sum(p.numel() for p in model.encoder.parameters())
        log.info("%s %s, %.2fM encoder params, %d clips, world size %d, device %s",
                 cfg["objective"], cfg["model"]["arch"], n_params / 1e6, len(data), info.world_size, info.device)
    total = t_cfg["steps"]
    metrics_path = run_dir / "metrics.csv"
    bar = tqdm(total=total, initial=step, desc="pretrain", unit="step", disable=not info.is_main, mininterval=5.0)
    start = time.perf_counter()
    stop = False
    while step < total and not stop:
        t0 = time.perf_counter()
        frames, indices = sampler.next_batch()
        batch = torch.from_numpy(np.ascontiguousarray(data.batch(indices)))  # B 3 T H W
        inputs = make_inputs(model, batch, augment)
        if targets is not None:
            inputs["distill_input"], inputs["distill_target"] = batch, torch.from_numpy(targets[indices])
        inputs = _to_device(inputs, info.device)
        momentum = teacher_momentum(step, total, cfg["simdino"]["momentum"])
        lr = scheduler.get_last_lr()[0]
        out = train_step(ddp, optimizer, scheduler, inputs, cfg["optim"]["clip_grad"], momentum, t_cfg["amp"])
        if not math.isfinite(out["loss"]):
            raise FloatingPointError(f"loss is {out['loss']} at step {step}")
        step += 1
        elapsed = time.perf_counter() - start
        stop = t_cfg["max_minutes"] > 0 and any_rank(elapsed > 60 * t_cfg["max_minutes"], info)
        if info.is_main:
            row = {"step": step, "frames": frames, "batch": len(indices), "lr": lr, "momentum": momentum,
                   "clips_per_s": len(indices) * info.world_size / (time.perf_counter() - t0), "elapsed_s": elapsed, **out}
            append_metrics(metrics_path, row)
            bar.update(1)
            bar.set_postfix(loss=f"{out['loss']:.4f}", T=frames)
        if step % t_cfg["ckpt_every"] == 0 or step == total or stop:
            _checkpoint(ckpt_dir, model, optimizer, scheduler, step, cfg, sampler, info)
    bar.close()
    if stop and info.is_main:
        log.warning("stopped at step %d of %d: max_minutes %.1f reached", step, total, t_cfg["max_minutes"])
    check_replicas(model, info, run_dir)
    return last


def param_checksum(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer, in name order (equal on all ranks when DDP keeps them in sync)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_replicas(model: nn.Module, info: DistInfo, run_dir: Path) -> None:
    """Gather each rank's weight checksum; rank 0 writes them to ``replicas.json``; raise if they differ."""
    sums = all_gather_objects(param_checksum(model), info)
    if info.is_main:
        (run_dir / "replicas.json").write_text(json.dumps({"world_size": info.world_size, "checksums": sums}))
    if len(set(sums)) != 1:
        raise RuntimeError(f"ranks hold different weights after training: {sums}")


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on any (so all ranks stop at the same step)."""
    if not info.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=info.device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item() > 0)


def _checkpoint(ckpt_dir: Path, model, optimizer, scheduler, step, cfg, sampler, info: DistInfo) -> None:
    samplers = all_gather_objects(sampler.state_dict(), info)
    rngs = all_gather_objects(rng_state(), info)
    if info.is_main:
        path = ckpt_dir / f"step-{step:07d}.pt"
        save_checkpoint(path, model, optimizer, scheduler, step, cfg, samplers, rngs)
        save_checkpoint(ckpt_dir / "last.pt", model, optimizer, scheduler, step, cfg, samplers, rngs)
        log.info("checkpoint %s", path)
    barrier(info)


def _to_device(inputs: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in inputs.items():
        out[key] = [v.to(device, non_blocking=True) for v in value] if isinstance(value, list) else value.to(device)
    return out


def append_metrics(path: Path, row: dict[str, Any], fields: tuple[str, ...] = METRIC_FIELDS) -> None:
    """Append one row to a metrics CSV (header written first), floats with 6 significant digits."""
    new = not path.is_file()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

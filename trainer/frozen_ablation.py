"""Training-free ablation of the frozen ImageNet frame encoder: which layers, spatial pooling, pooling over frames
and projection (none, PCA, learned whitening) retrieve best on the validation split.

    python -m trainer.frozen_ablation --out runs/frozen-ablation [--manifest data/manifest.csv] [--test]

Descriptors of every layer and pooling are computed once per clip (``stage4`` … ``head``; spatial ``avg``, ``gem``
(p = 3) or ``max``; over frames ``mean``, or ``meanmax`` for the average pool), each L2-normalised per frame as the
encoder does. The projections are fitted without labels on up to ``--per-modality`` train clips per modality
(MRI never), the learned whitening from a second view of each of those clips (the other frames of a volume or
video — the neighbouring slices — or, for a 2D image, another crop; both with mild contrast changes and flips).
Scores: macro P@10 per modality on the validation split carved from ``train`` by patient (``trainer.adapt``),
uncapped; ``--test`` adds the test split's numbers for the report (choose on validation, never on these).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from trainer.augment import IntensitySpec, crop_box, intensity_augment
from trainer.frame_encoder import FrameClipEncoder
from trainer.whitening import fit_learned_whitening, fit_whitening

log = logging.getLogger(__name__)

LAYERS = ("stage4", "stage5", "stage6", "stage7", "head")
SECOND_VIEW_INTENSITY = IntensitySpec(p_gamma=0.3, gamma=(0.8, 1.25), p_contrast=0.5, contrast=(0.85, 1.15),
                                      brightness=(-0.05, 0.05), p_noise=0.2, noise_std=(0.0, 0.03), p_blur=0.2)
MULTI = ("stage6", "stage7", "head")


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: descriptor (layers, spatial, temporal pooling) and projection."""

    name: str
    layers: tuple[str, ...]
    spatial: str = "avg"
    temporal: str = "mean"  # mean | meanmax
    projection: str = "none"  # none | pca | learned
    dim: int = 256
    power: float = 0.25


VARIANTS = (
    Variant("head, avg, mean", ("head",)),
    Variant("head, GeM, mean", ("head",), spatial="gem"),
    Variant("stage6+7+head, avg, mean", MULTI),
    Variant("stage6+7+head, avg, mean, PCA-256 (shipped)", MULTI, projection="pca"),
    Variant("stage6+7+head, GeM, mean, PCA-256", MULTI, spatial="gem", projection="pca"),
    Variant("stage6+7+head, max, mean, PCA-256", MULTI, spatial="max", projection="pca"),
    Variant("stage6+7+head, avg, mean+max over frames", MULTI, temporal="meanmax"),
    Variant("stage4..head, avg, mean", LAYERS),
    Variant("stage4..head, avg, mean, PCA-256", LAYERS, projection="pca"),
    Variant("stage6+7+head, learned whitening 128, power 0.5", MULTI, projection="learned", dim=128, power=0.5),
    Variant("stage6+7+head, learned whitening 256, power 0.25", MULTI, projection="learned", dim=256),
    Variant("stage6+7+head, learned whitening 512, power 0.25", MULTI, projection="learned", dim=512),
    Variant("stage4..head, learned whitening 128, power 0.5", LAYERS, projection="learned", dim=128, power=0.5),
    Variant("stage4..head, learned whitening 512, power 0.25", LAYERS, projection="learned", dim=512),
)


def first_view(clip: torch.Tensor) -> torch.Tensor:
    """``3 T H W`` -> the frames the encoder sees, ``3 T' H W``: one per tubelet (a 2D clip's T = 2 gives its image)."""
    return clip[:, ::2]


def second_view(clip: torch.Tensor, seed: int) -> torch.Tensor:
    """Another view of the same case, ``3 T' H W``: the other frames (neighbouring slices) of a volume or video, or
    a 50-100 % crop of a 2D image, resized back, with mild intensity changes and a random flip."""
    torch.manual_seed(seed)
    _, t, h, w = clip.shape
    frames = clip[:, 1::2] if t > 2 else clip[:, :1]
    top, left, ch, cw = crop_box(h, w, (0.5, 1.0) if t <= 2 else (0.6, 1.0))
    box = frames[:, :, top : top + ch, left : left + cw].transpose(0, 1)  # T' 3 h w
    box = F.interpolate(box, size=(h, w), mode="bilinear", align_corners=False).transpose(0, 1)
    return intensity_augment(box, SECOND_VIEW_INTENSITY)


@torch.inference_mode()
def clip_descriptors(encoder: FrameClipEncoder, frames: torch.Tensor) -> dict[str, np.ndarray]:
    """``3 T' H W`` frames -> ``{"layer/spatial/temporal": vector}`` for every layer and pooling of this module."""
    maps = encoder.layer_maps(frames.transpose(0, 1).contiguous(), LAYERS)  # each T' C h w
    out: dict[str, np.ndarray] = {}
    for layer, fmap in maps.items():
        pooled = {
            "avg": fmap.mean(dim=(2, 3)),
            "gem": fmap.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3),
            "max": fmap.amax(dim=(2, 3)),
        }
        for spatial, per_frame in pooled.items():
            per_frame = F.normalize(per_frame, dim=-1)  # T' C
            out[f"{layer}/{spatial}/mean"] = per_frame.mean(0).numpy()
            if spatial == "avg":
                out[f"{layer}/{spatial}/max"] = per_frame.amax(0).numpy()
    return out


def collect(encoder: FrameClipEncoder, clip_set: Any, indices: Sequence[int], view: str) -> dict[str, np.ndarray]:
    """Descriptors of ``indices`` (``view`` = ``first`` or ``second``), each key ``N C``."""
    store: dict[str, list[np.ndarray]] = {}
    for i in tqdm(indices, desc=f"{view} view", unit="clip", mininterval=10.0):
        clip = torch.from_numpy(clip_set.clips(i))  # 3 T H W (grey already replicated)
        frames = first_view(clip) if view == "first" else second_view(clip, 1000 + int(i))
        for key, vector in clip_descriptors(encoder, frames).items():
            store.setdefault(key, []).append(vector)
    return {k: np.stack(v).astype(np.float64) for k, v in store.items()}


def variant_features(store: dict[str, np.ndarray], variant: Variant) -> np.ndarray:
    """The variant's descriptor ``N P``: its layers' parts, each L2-normalised, concatenated."""
    temporal = ("mean", "max") if variant.temporal == "meanmax" else ("mean",)
    parts = [store[f"{layer}/{variant.spatial}/{t}"] for t in temporal for layer in variant.layers]
    return np.concatenate([p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12) for p in parts], axis=1)


def fit_projection(variant: Variant, fit: dict[str, np.ndarray], fit_second: dict[str, np.ndarray],
                   groups: Sequence[str]) -> Callable[[np.ndarray], np.ndarray]:
    """``x -> projected x`` for the variant, fitted on the fit clips (identity for ``none``)."""
    if variant.projection == "none":
        return lambda x: x
    x = variant_features(fit, variant)
    if variant.projection == "pca":
        w = fit_whitening(x, groups, dim=variant.dim, power=0.0)
    else:
        w = fit_learned_whitening(x, variant_features(fit_second, variant), groups, dim=variant.dim,
                                  power=variant.power)
    return w.apply


def bootstrap_fits(variant: Variant, fit: dict[str, np.ndarray], fit_second: dict[str, np.ndarray],
                   groups: Sequence[str], seeds: Sequence[int] = (0, 1, 2)) -> list[Callable[[np.ndarray], np.ndarray]]:
    """The variant's projection fitted on one bootstrap resample of the fit clips per seed (resampled within each
    group): the seeds of a training-free recipe, whose only random part is the sample its projection is fitted on."""
    names = np.asarray(groups)
    fits = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        pick = np.concatenate([rng.choice(np.flatnonzero(names == g), size=int((names == g).sum()), replace=True)
                               for g in sorted(set(names))])
        fits.append(fit_projection(variant, {k: v[pick] for k, v in fit.items()},
                                   {k: v[pick] for k, v in fit_second.items()}, names[pick].tolist()))
    return fits


def run(manifest: Path, out: Path, cache_dir: Path | None, per_modality: int, with_test: bool, seed: int = 0) -> dict:
    """Compute every variant's scores; write ``out/ablation.json`` and ``out/ablation.md``; return the results."""
    from engine.preprocess import DEFAULT_PARAMS
    from trainer.adapt import load_adapt_data, macro_p10_per_modality
    from trainer.clip_cache import load_clip_set
    from trainer.config import load_config

    cfg = load_config("imagenet_lite", [f"data.manifest={manifest}", "data.val_max_per_dataset=1000000"]
                      + ([f"data.cache_dir={cache_dir}"] if cache_dir else []))
    clip_set, train_idx, val_idx = load_adapt_data(cfg)
    rng = np.random.default_rng(seed)
    by_modality: dict[str, list[int]] = {}
    for i in train_idx:
        by_modality.setdefault(clip_set.rows[i].modality, []).append(i)
    fit_idx = sorted(int(i) for members in by_modality.values()
                     for i in rng.choice(members, size=min(per_modality, len(members)), replace=False))
    groups = [clip_set.rows[i].modality for i in fit_idx]
    encoder = FrameClipEncoder(cfg["model"]["arch"], layers=("head",)).eval()
    fit, fit_second = collect(encoder, clip_set, fit_idx, "first"), collect(encoder, clip_set, fit_idx, "second")
    evaluated = {"validation": (collect(encoder, clip_set, val_idx, "first"), [clip_set.rows[i] for i in val_idx])}
    if with_test:
        test = load_clip_set(manifest, "test", replace(DEFAULT_PARAMS, size=cfg["model"]["img_size"]),
                             cache_dir=cache_dir)
        evaluated["test"] = (collect(encoder, test, range(len(test)), "first"), test.rows)
    results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in evaluated}
    for variant in VARIANTS:
        project = fit_projection(variant, fit, fit_second, groups)
        for name, (store, rows) in evaluated.items():
            results[name][variant.name] = macro_p10_per_modality(project(variant_features(store, variant)), rows)
        log.info("%s: %s", variant.name, json.dumps(results["validation"][variant.name]))
    shipped = next(v for v in VARIANTS if v.name.endswith("(shipped)"))
    for seed, project in enumerate(bootstrap_fits(shipped, fit, fit_second, groups)):
        for name, (store, rows) in evaluated.items():
            results[name][f"shipped recipe, PCA fit seed {seed} (bootstrap)"] = macro_p10_per_modality(
                project(variant_features(store, shipped)), rows)
    out.mkdir(parents=True, exist_ok=True)
    report = {"fit_clips": len(fit_idx), "validation_clips": len(val_idx), "results": results}
    (out / "ablation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "ablation.md").write_text(markdown(results), encoding="utf-8")
    return report


def markdown(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """One table per evaluated split: macro P@10 per modality and their mean."""
    lines = []
    for split, rows in results.items():
        modalities = sorted({m for per in rows.values() for m in per})
        lines += [f"### {split}: macro P@10", "", "| variant | mean | " + " | ".join(modalities) + " |",
                  "|---|---:|" + "---:|" * len(modalities)]
        for name, per in rows.items():
            lines.append(f"| {name} | {np.mean(list(per.values())):.4f} | "
                         + " | ".join(f"{per.get(m, float('nan')):.3f}" for m in modalities) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.frozen_ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=None, help="manifest.csv (default: the shared data's)")
    parser.add_argument("--out", type=Path, required=True, help="folder for ablation.json and ablation.md")
    parser.add_argument("--cache-dir", type=Path, default=None, help="clip cache folder")
    parser.add_argument("--per-modality", type=int, default=400, help="train clips per modality for the fits")
    parser.add_argument("--test", action="store_true", help="also report the test split (never choose on it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    manifest = args.manifest
    if manifest is None:
        from engine.config import shared_data_dir

        data = shared_data_dir()
        if data is None:
            print("frozen_ablation: error: no --manifest and no shared data (set M3RET_DATA)", file=sys.stderr)
            return 1
        manifest = data / "manifest.csv"
    report = run(manifest, args.out, args.cache_dir, args.per_modality, args.test)
    print(markdown(report["results"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

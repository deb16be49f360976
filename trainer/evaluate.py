"""Retrieval evaluation: embed one split with several embedders, score them, write a Markdown table and JSON.

    m3ret-train evaluate --model model.onnx --manifest data/manifest.csv --split test --out runs/eval
    m3ret-train evaluate --baselines raw_pixels,random_vit,efficientnet_lite0 --out runs/eval-baselines

Every row of the split is evaluated, MRI included (the modality the encoder never trained on); the manifest's
modality column is the truth. Metrics are defined in ``trainer.retrieval_metrics``. Clips come from the clip
cache (``trainer.clip_cache``) built with each embedder's preprocessing parameters.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.config import shared_data_dir
from engine.encoder import ModelError
from engine.preprocess import PreprocessParams
from trainer.baselines import BASELINES, Embedder, OnnxEmbedder, make_baseline
from trainer.clip_cache import ClipSet, build_clip_set, cache_name
from trainer.manifest import ManifestRow, load_manifest, rows_from_folder
from trainer.retrieval_metrics import DEFAULT_KS, retrieval_metrics

logger = logging.getLogger(__name__)

TABLE_COLUMNS = ("P@1", "P@5", "P@10", "mAP@R", "same_modality@10")
MACRO_COLUMNS = ("P@1", "P@10", "mAP@R")


def embed_clip_set(embedder: Embedder, clip_set: ClipSet, desc: str = "embedding") -> np.ndarray:
    """Embeddings of every clip, float32 ``N D`` in clip order, batched by clip length T."""
    batch_size = max(1, int(getattr(embedder, "batch_size", 16)))
    chunks = [
        indices[start : start + batch_size]
        for indices in clip_set.indices_by_length().values()
        for start in range(0, len(indices), batch_size)
    ]
    out: np.ndarray | None = None
    for chunk in tqdm(chunks, desc=desc, unit="batch", mininterval=2.0):
        vectors = np.asarray(embedder.embed(clip_set.batch(chunk)), dtype=np.float32)  # B D
        if out is None:
            out = np.zeros((len(clip_set), vectors.shape[1]), dtype=np.float32)
        out[chunk] = vectors
    if out is None:
        raise ValueError("no clips to embed")
    return out


def rows_for(manifest: str | Path, split: str | None) -> list[ManifestRow]:
    """Rows of a manifest CSV's split, or every file of a plain folder (label = parent folder name)."""
    path = Path(manifest)
    if path.is_dir() and not (path / "manifest.csv").is_file():
        return rows_from_folder(path)
    csv_path = path / "manifest.csv" if path.is_dir() else path
    return load_manifest(csv_path, splits=split)


def evaluate(
    embedders: Mapping[str, Embedder],
    manifest: str | Path | Sequence[ManifestRow],
    split: str | None = "test",
    *,
    cache_dir: str | Path | None = None,
    workers: int = 2,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict:
    """Score every embedder on one split (leave-one-out retrieval); returns a JSON-ready dict.

    ``manifest``: a manifest CSV, a folder (its manifest.csv, else its files) or rows already loaded.
    Result: ``{"split", "n_rows", "n_clips", "modalities": {m: n}, "failures": [...],
    "methods": {name: {"metrics": retrieval_metrics(...), "dim", "embed_seconds", "model_id"?}}}``.
    """
    if isinstance(manifest, (str, Path)):
        rows = rows_for(manifest, split)
        name = cache_name(manifest, split)  # the trainer's name for the same rows: one shared cache file
    else:
        rows, name = list(manifest), f"rows-{split or 'all'}"
    if len(rows) < 2:
        raise ValueError(f"{manifest}: split {split!r} has {len(rows)} rows; retrieval needs at least two")
    clip_sets: dict[PreprocessParams, ClipSet] = {}
    results: dict = {"split": split, "n_rows": len(rows), "methods": {}}
    for method, embedder in embedders.items():
        params = embedder.params
        if params not in clip_sets:
            clip_sets[params] = build_clip_set(rows, params, cache_dir=cache_dir, name=name, workers=workers)
        clip_set = clip_sets[params]
        started = time.perf_counter()
        embeddings = embed_clip_set(embedder, clip_set, desc=method)
        seconds = time.perf_counter() - started
        metrics = retrieval_metrics(embeddings, [r.label for r in clip_set.rows], clip_set.modalities,
                                    clip_set.datasets, ks, patients=[r.patient for r in clip_set.rows])
        entry = {"metrics": metrics, "dim": int(embeddings.shape[1]), "embed_seconds": round(seconds, 2),
                 "n_clips": len(clip_set), "preprocess": json.loads(params.to_json())}
        if getattr(embedder, "model_id", None):
            entry["model_id"] = embedder.model_id
        results["methods"][method] = entry
        overall = metrics["overall"]
        logger.info("%s: P@1 %.3f mAP@R %.3f (%d clips, %.1f s)", method, overall["P@1"], overall["mAP@R"],
                    len(clip_set), seconds)
    first = next(iter(clip_sets.values()))
    results["n_clips"] = len(first)
    results["modalities"] = {m: first.modalities.count(m) for m in sorted(set(first.modalities))}
    results["failures"] = [{"path": str(r.path), "reason": reason} for r, reason in first.failures]
    return results


# ---------------------------------------------------------------- reports


def _fmt(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def markdown_report(results: dict) -> str:
    """Tables: method x modality (and per dataset), then the label-free cross-modal view."""
    lines = [f"# Retrieval evaluation, split `{results['split']}`", ""]
    lines.append(f"{results['n_clips']} clips of {results['n_rows']} rows "
                 f"({', '.join(f'{m} {n}' for m, n in results['modalities'].items())}); "
                 f"{len(results['failures'])} unreadable. Leave-one-out over the whole split, items of the query's "
                 "own patient left out of its gallery; relevant = same dataset/label. Macro = mean over the labels "
                 "(each class once), [95 % bootstrap interval]. Definitions: `trainer/retrieval_metrics.py`.")
    for title, key in (("Macro per modality", "per_modality"), ("Macro per dataset", "per_dataset")):
        lines += ["", f"## {title}", "", "| method | " + ("modality" if key == "per_modality" else "dataset")
                  + " | " + " | ".join(f"macro {c}" for c in MACRO_COLUMNS) + " | queries |",
                  "|---|---|" + "---:|" * (len(MACRO_COLUMNS) + 1)]
        for method, entry in results["methods"].items():
            metrics = entry["metrics"]
            for group, row in metrics[key].items():
                cells = " | ".join(f"{_fmt(row['macro'][c])} [{_fmt(row['ci95'][c][0])}, {_fmt(row['ci95'][c][1])}]"
                                   for c in MACRO_COLUMNS)
                lines.append(f"| {method} | {group} | {cells} | {row['n_scored']} |")
    for title, key in (("Per modality (micro)", "per_modality"), ("Per dataset (micro)", "per_dataset")):
        lines += ["", f"## {title}", "", "| method | " + ("modality" if key == "per_modality" else "dataset")
                  + " | " + " | ".join(TABLE_COLUMNS) + " | queries |",
                  "|---|---|" + "---:|" * (len(TABLE_COLUMNS) + 1)]
        for method, entry in results["methods"].items():
            metrics = entry["metrics"]
            groups = [("all", metrics["overall"])] if key == "per_modality" else []
            for group, row in groups + list(metrics[key].items()):
                cells = " | ".join(_fmt(row[c]) for c in TABLE_COLUMNS)
                lines.append(f"| {method} | {group} | {cells} | {row['n_queries']} |")
    lines += ["", "## Cross-modal (label-free)", "",
              "Top-1 modality over the full gallery (diagonal = same-modality@1); nearest other modality when the "
              "gallery holds only the other modalities; modality gap = best same-modality similarity minus best "
              "other-modality similarity (mean over queries).", "",
              "| method | query modality | top-1 modality shares | nearest other modality | modality gap |",
              "|---|---|---|---|---:|"]
    for method, entry in results["methods"].items():
        metrics = entry["metrics"]
        for modality, shares in metrics["modality_confusion"].items():
            top1 = ", ".join(f"{m} {_fmt(v)}" for m, v in shares.items() if v)
            others = metrics["other_modality"]["confusion"][modality]
            nearest = ", ".join(f"{m} {_fmt(v)}" for m, v in others.items() if v)
            gap = metrics["other_modality"]["modality_gap"][modality]
            lines.append(f"| {method} | {modality} | {top1} | {nearest or '–'} | {_fmt(gap)} |")
    lines += ["", "## Cost", "", "| method | dim | seconds to embed the split |", "|---|---:|---:|"]
    for method, entry in results["methods"].items():
        lines.append(f"| {method} | {entry['dim']} | {entry['embed_seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_report(results: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``results.md`` and ``results.json`` (NaN as null) into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out / "results.md", out / "results.json"
    md_path.write_text(markdown_report(results), encoding="utf-8")
    json_path.write_text(json.dumps(_json_safe(results), indent=2), encoding="utf-8")
    return md_path, json_path


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m3ret-train evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], type=Path, metavar="X.onnx",
                        help="an M3Ret ONNX model to evaluate (repeatable)")
    parser.add_argument("--baselines", default=None,
                        help=f"comma-separated subset of {','.join(BASELINES)} or 'none' "
                             "(default: all three without --model, none with it)")
    parser.add_argument("--arch", default=None, help="random_vit architecture (default: the model's, else vit_tiny)")
    parser.add_argument("--baseline-params", choices=("default", "model"), default="model",
                        help="preprocessing of the baselines' clips: the first model's (default) or the engine defaults (128 px)")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="manifest CSV or folder (default: the shared data manifest)")
    parser.add_argument("--split", default="test", help="split to evaluate ('all' for every row)")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.md and results.json")
    parser.add_argument("--cache-dir", type=Path, default=None, help="clip cache folder (default $M3RET_CACHE)")
    parser.add_argument("--workers", type=int, default=2, help="reader processes when building the clip cache")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def _embedders(args: argparse.Namespace) -> dict[str, Embedder]:
    embedders: dict[str, Embedder] = {}
    for path in args.model:
        embedder = OnnxEmbedder(path)
        embedders[embedder.model_id or path.stem] = embedder
    default = "none" if args.model else ",".join(BASELINES)
    names = [n.strip() for n in (args.baselines or default).split(",") if n.strip() and n.strip() != "none"]
    arch = args.arch or next((e.encoder.arch for e in embedders.values() if isinstance(e, OnnxEmbedder)
                              and e.encoder.arch), "vit_tiny")
    if "random_vit" in names and args.arch is None:
        from trainer.model import ARCHS

        if arch not in ARCHS:
            logger.warning("model arch %r is not a trainer ViT; random_vit uses vit_tiny", arch)
            arch = "vit_tiny"
    params = next(iter(embedders.values())).params if embedders and args.baseline_params == "model" else None
    for name in names:
        embedders[name] = make_baseline(name, arch=arch, **({"params": params} if params else {}))
    return embedders


def main(argv: Iterable[str] | None = None) -> int:
    """``m3ret-train evaluate``: returns the exit status (0 ok, 1 bad input)."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    try:
        manifest = args.manifest
        if manifest is None:
            data = shared_data_dir()
            if data is None:
                raise ValueError("no --manifest given and no shared data found (set M3RET_DATA)")
            manifest = data / "manifest.csv"
        embedders = _embedders(args)
        if not embedders:
            raise ValueError("nothing to evaluate: give --model and/or --baselines")
        split = None if args.split == "all" else args.split
        results = evaluate(embedders, manifest, split, cache_dir=args.cache_dir, workers=args.workers)
    except (ValueError, OSError, ModelError) as exc:  # bad input: one line, no traceback
        print(f"m3ret-train evaluate: error: {exc}", file=sys.stderr)
        return 1
    md_path, json_path = write_report(results, args.out)
    print(md_path.read_text(encoding="utf-8"))
    print(f"wrote {md_path} and {json_path}")
    return 0

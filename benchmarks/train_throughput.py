"""Training throughput (clips/s) per objective and clip length, on synthetic clips at the real input size.

    python -m benchmarks.train_throughput [--steps 3 | --quick] [--experiment NAME] [--set k=v ...] [--out FILE]

Times full training steps (augmentation + forward + backward + AdamW + EMA) after one warm-up step, for 2D
batches (T=2) and 3D batches (T=16), for each objective. Prints a Markdown table and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from trainer.config import load_config
from trainer.synthetic import SyntheticClips
from trainer.train import PretrainModel, build_augment, build_optimizer, make_inputs, train_step


def measure(cfg: dict, frames: int, steps: int) -> float:
    """Clips per second of ``steps`` training steps on batches of clip length ``frames``."""
    torch.manual_seed(0)
    model = PretrainModel(cfg)
    optimizer, scheduler = build_optimizer(model, cfg)
    augment = build_augment(cfg)
    d = cfg["data"]
    size = cfg["model"]["img_size"]
    clips = SyntheticClips(64, size)
    pool = [i for i in range(len(clips)) if clips.length(i) == frames]
    bs = d["batch_size_2d"] if frames <= 2 else d["batch_size_3d"]
    batch = torch.from_numpy(clips.batch([pool[i % len(pool)] for i in range(bs)]))
    elapsed = 0.0
    for step in range(steps + 1):
        t0 = time.perf_counter()
        inputs = make_inputs(model, batch, augment)
        train_step(model, optimizer, scheduler, inputs, 3.0, 0.996, amp=True)
        if step > 0:  # the first step warms up allocators and kernels
            elapsed += time.perf_counter() - t0
    return bs * steps / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one timed step per cell")
    parser.add_argument("--objectives", default="mae,simdino,mae+simdino")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps = 1
    lines = [
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}",
        "",
        "| objective | arch | T | batch | clips/s | s/step |",
        "|---|---|---|---|---|---|",
    ]
    for objective in args.objectives.split(","):
        cfg = load_config(args.experiment, [*args.overrides, f"objective={objective}"])
        for frames in (2, 16):
            bs = cfg["data"]["batch_size_2d"] if frames <= 2 else cfg["data"]["batch_size_3d"]
            rate = measure(cfg, frames, args.steps)
            lines.append(f"| {objective} | {cfg['model']['arch']} | {frames} | {bs} | {rate:.2f} | {bs / rate:.2f} |")
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Indexing throughput end to end vs the raw ONNX encoder on the same clips, per kind (2D / volume / video).

For each kind, a fixed sample of the shared data's test split is

1. indexed into a fresh library with ``engine.indexer.index_paths`` (discover, read + preprocess in worker
   processes, embed, write catalog + index): end-to-end cases/s, with the peak memory (RSS of this process plus
   its reader processes, sampled every 20 ms with psutil; ``getrusage`` maxima as a cross-check);
2. read and preprocessed again outside the clock, then embedded with ``Encoder.embed_clips`` alone: raw encoder
   clips/s on exactly the same clips.

The ratio end-to-end / raw says how much of the encoder's speed the pipeline keeps. The encoder session is
created and warmed up before either is timed.

Run: ``python -m benchmarks.index_throughput [--model PATH | --random-init vit_tiny] [--quick]``
(default model: the bundled one; ``--random-init`` exports an untrained trainer ViT, same compute, needs torch).
Each figure is the best of ``--repeat`` (3) interleaved runs: the development VM is shared, so the best run is
the one least disturbed; the JSON keeps every run's time.
Results: printed as a markdown table and written to ``benchmarks/results/index_throughput.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import onnxruntime  # noqa: F401  isort: skip  (before usearch, see engine.vectors)
from engine.config import shared_data_dir
from engine.encoder import Encoder, default_model_path
from engine.indexer import default_workers, index_paths
from engine.io.case import Case, Failure
from engine.io.scan import discover, read_unit
from engine.library import Library
from engine.preprocess import case_to_clip

RESULTS = Path(__file__).resolve().parent / "results" / "index_throughput.json"

# kind -> (manifest filter, full count, quick count)
SAMPLES: dict[str, tuple[tuple[str, str], int, int]] = {
    "image2d": (("", ".png.jpg.jpeg"), 150, 40),
    "volume": (("ct", ".nii.gz"), 40, 10),
    "video": (("ultrasound", ".mp4"), 12, 4),
}


def sample_files(data: Path, kind: str, quick: bool) -> list[Path]:
    """A deterministic sample of test-split files of one kind (2D mixes X-ray, MRI slices and US stills)."""
    (modality, suffixes), full, small = SAMPLES[kind]
    n = small if quick else full
    rows = [r for r in csv.DictReader((data / "manifest.csv").open()) if r["split"] == "test"]
    if kind == "image2d":
        picked = [r for r in rows if Path(r["path"]).suffix.lower() in (".png", ".jpg", ".jpeg")]
        by_modality: dict[str, list[dict[str, str]]] = {}
        for r in picked:
            by_modality.setdefault(r["modality"], []).append(r)
        mixed = [r for group in zip(*by_modality.values()) for r in group]  # round robin over modalities
        rest = [r for r in picked if r not in mixed]
        chosen = (mixed + rest)[:n]
    else:
        chosen = [r for r in rows if r["modality"] == modality and r["path"].endswith(suffixes)][:n]
    return [data / r["path"] for r in chosen]


class PeakMemory:
    """Samples the RSS of this process + its children in a thread; ``peak_mb`` after ``stop``."""

    def __init__(self, interval_s: float = 0.02) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak_total = 0
        self.peak_parent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                parent = self._process.memory_info().rss
                children = sum(c.memory_info().rss for c in self._process.children(recursive=True))
            except psutil.Error:
                continue
            self.peak_parent = max(self.peak_parent, parent)
            self.peak_total = max(self.peak_total, parent + children)
            self._stop.wait(self._interval)


def raw_clips(files: list[Path], encoder: Encoder) -> list[np.ndarray]:
    """The clips the indexer would embed for these files (read + preprocessed, outside the clock)."""
    clips = []
    for file in files:
        for unit in discover(file):
            if isinstance(unit, Failure):
                continue
            for case in read_unit(unit):
                if isinstance(case, Case):
                    clips.append(case_to_clip(case, encoder.params))
    return clips


def bench_kind(kind: str, files: list[Path], model: Path, workers: int, threads: int | None,
               repeat: int = 3) -> dict[str, object]:
    """End-to-end and raw-encoder throughput on ``files``, each the best of ``repeat`` interleaved runs."""
    encoder = Encoder.shared(model, threads=threads)
    clips: list[np.ndarray] | None = None  # made after the first run, so they do not count in its peak memory
    e2e_times, raw_times, peaks = [], [], []
    n = failed = 0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="m3ret-bench-") as tmp:
            library = Library.open(Path(tmp) / "lib", model_path=model, threads=threads)
            with PeakMemory() as memory:
                started = time.perf_counter()
                report = index_paths(library, files, workers=workers)
                e2e_times.append(time.perf_counter() - started)
            library.close()
        peaks.append((memory.peak_total, memory.peak_parent))
        n, failed = report.n_added, report.n_failed
        clips = clips if clips is not None else raw_clips(files, encoder)
        started = time.perf_counter()
        encoder.embed_clips(clips)
        raw_times.append(time.perf_counter() - started)
    e2e_rate, raw_rate = n / min(e2e_times), len(clips) / min(raw_times)
    return {
        "kind": kind, "cases": n, "failed": failed, "clip_T": int(clips[0].shape[1]) if clips else None,
        "repeat": repeat, "e2e_seconds": [round(t, 3) for t in e2e_times], "e2e_cases_per_s": round(e2e_rate, 2),
        "raw_seconds": [round(t, 3) for t in raw_times], "raw_clips_per_s": round(raw_rate, 2),
        "ratio": round(e2e_rate / raw_rate, 3),
        "peak_rss_total_mb": round(peaks[0][0] / 2**20, 1),  # first run: nothing else held yet
        "peak_rss_parent_mb": round(peaks[0][1] / 2**20, 1),
        "source_mb": round(sum(f.stat().st_size for f in files) / 1e6, 2),
    }


def random_init_model(arch: str, folder: Path) -> Path:
    """Export an untrained trainer ViT (same compute as a trained one) to ONNX, in a child process so that torch
    does not inflate this process's memory figures."""
    import subprocess

    out = folder / f"{arch}-random.onnx"
    code = (
        "import sys, torch\n"
        "from pathlib import Path\n"
        "from trainer.export import export_onnx\n"
        "from trainer.model import ARCHS, VisionTransformer\n"
        "spec = ARCHS[sys.argv[1]]\n"
        "torch.manual_seed(0)\n"
        "enc = VisionTransformer(embed_dim=spec.embed_dim, depth=spec.depth, num_heads=spec.num_heads)\n"
        "export_onnx(enc, Path(sys.argv[2]), arch=sys.argv[1], model_id=f'bench-{sys.argv[1]}-random-init')\n"
    )
    repo = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code, arch, str(out)], cwd=repo, check=True, capture_output=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.index_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the bundled one)")
    parser.add_argument("--random-init", default=None, metavar="ARCH", help="benchmark an untrained trainer ViT")
    parser.add_argument("--quick", action="store_true", help="small samples")
    parser.add_argument("--workers", type=int, default=None, help="reader processes (default: cores - 1)")
    parser.add_argument("--threads", type=int, default=None, help="encoder threads (default: all cores)")
    parser.add_argument("--kinds", default="image2d,volume,video")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    data = shared_data_dir()
    if data is None:
        print("index_throughput: shared data not found (set M3RET_DATA)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="m3ret-bench-model-") as tmp_models:
        model = args.model or (
            random_init_model(args.random_init, Path(tmp_models)) if args.random_init else default_model_path()
        )
        return run(args, data, model)


def run(args: argparse.Namespace, data: Path, model: Path) -> int:
    """Benchmark every requested kind with ``model``; print the table and write the JSON."""
    if not model.is_file():
        print(f"index_throughput: model not found: {model} (pass --model or --random-init vit_tiny)", file=sys.stderr)
        return 2
    workers = default_workers() if args.workers is None else args.workers
    encoder = Encoder.shared(model, threads=args.threads)
    for t in {encoder.params.frames_2d, encoder.params.frames_3d}:  # warm up both clip lengths
        encoder.embed_clips([np.zeros((3, t, encoder.params.size, encoder.params.size), np.float32)])

    kinds = args.kinds.split(",")
    if len(kinds) == 1:
        files = sample_files(data, kinds[0], args.quick)
        rows = [bench_kind(kinds[0], files, model, workers, args.threads, args.repeat)]
    else:  # one fresh process per kind, so each kind's peak memory is its own
        rows = [_bench_in_child(kind, model, args) for kind in kinds]
    for row in rows:
        print(json.dumps(row), flush=True)
    usage_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    usage_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    doc = {
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg(),
        "model": encoder.model_id, "arch": encoder.arch, "embed_dim": encoder.embed_dim,
        "workers": workers, "encoder_threads": args.threads or "all", "providers": encoder.providers,
        "maxrss_self_mb": round(usage_self, 1), "maxrss_largest_child_mb": round(usage_children, 1),
        "sample": {kind: SAMPLES[kind][2 if args.quick else 1] for kind in kinds},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"\nmodel {encoder.model_id} ({encoder.arch}, D={encoder.embed_dim}), {workers} reader process(es), "
          f"load average {doc['load_average'][0]:.2f}")
    print("| kind | cases | T | end-to-end cases/s | raw encoder clips/s | ratio | peak RSS total / parent MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['kind']} | {r['cases']} | {r['clip_T']} | {r['e2e_cases_per_s']} | {r['raw_clips_per_s']} | "
              f"{r['ratio']} | {r['peak_rss_total_mb']} / {r['peak_rss_parent_mb']} |")
    return 0


def _bench_in_child(kind: str, model: Path, args: argparse.Namespace) -> dict[str, object]:
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        command = [sys.executable, "-m", "benchmarks.index_throughput", "--model", str(model), "--kinds", kind,
                   "--out", str(out)]
        command += ["--quick"] if args.quick else []
        command += ["--repeat", str(args.repeat)]
        command += ["--workers", str(args.workers)] if args.workers is not None else []
        command += ["--threads", str(args.threads)] if args.threads else []
        subprocess.run(command, check=True, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())["rows"][0]


if __name__ == "__main__":
    sys.exit(main())

"""Indexing on Ray (``engine.cluster``) vs the local indexer, and a synthetic archive indexed end to end on Ray.

1. **compare**: the same sample of the shared data's test split (``--sample`` files, round robin over
   modalities and kinds) indexed into fresh libraries by the local indexer (``engine.indexer.index_paths``) and on
   a local Ray instance with 1 and with 2 CPUs ("1 / 2 workers"). cases/s over the whole call; for Ray also
   without the instance's start (``ray.init``, timed apart) — what a long run on a running cluster sees.
2. **archive**: ``--archive-cases`` generated small PNGs (64 x 64 grey pictures, a few shapes each) indexed end
   to end on a local Ray instance: cases/s, the driver's RSS sampled every 0.5 s against the cases merged (flat
   = the driver streams and never collects), merge time (the driver's serial catalog transactions), index time.
3. A projection to 1M studies on N workers from the measured per-CPU rate and the driver's per-case merge cost.

Run: ``python -m benchmarks.ray_index [--sample 60] [--archive-cases 100000] [--model PATH] [--skip-compare]``.
Needs the cluster extra (ray) and psutil. Results: ``benchmarks/results/ray_index.json`` (and printed).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import onnxruntime  # noqa: F401  isort: skip  (before usearch, see engine.vectors)
from benchmarks.index_throughput import PeakMemory
from engine.cluster.indexer import ClusterOptions, ClusterProgress, index_paths_on_ray
from engine.config import shared_data_dir
from engine.encoder import default_model_path
from engine.indexer import index_paths
from engine.library import Library

RESULTS = Path(__file__).resolve().parent / "results" / "ray_index.json"
log = logging.getLogger(__name__)


def sample_files(data: Path, n: int) -> list[Path]:
    """The first ``n`` test-split files taken round robin over (modality, file kind)."""
    rows = [r for r in csv.DictReader((data / "manifest.csv").open()) if r["split"] == "test"]
    groups: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        groups.setdefault((r["modality"], Path(r["path"]).suffixes[-1]), []).append(r["path"])
    picked: list[str] = []
    while len(picked) < n and any(groups.values()):
        for key in sorted(groups):
            if groups[key] and len(picked) < n:
                picked.append(groups[key].pop(0))
    return [data / p for p in picked]


def write_archive(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` 64 x 64 grey PNGs (a disc or a frame plus noise), 1000 per sub-folder."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    for i in range(n):
        sub = folder / f"{i // 1000:04d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        cy, cx, r = rng.uniform(20, 44), rng.uniform(20, 44), rng.uniform(8, 20)
        image = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.float32) * 150 + 50
        if i % 2:
            image[4:-4, 4:8] = 230
        image += rng.normal(0, 10, image.shape)
        cv2.imwrite(str(sub / f"case_{i:06d}.png"), np.clip(image, 0, 255).astype(np.uint8))


class RssSampler(PeakMemory):
    """``PeakMemory`` that also keeps the curve: (seconds, cases merged, driver RSS MB) every ``interval_s``."""

    def __init__(self, interval_s: float = 0.5) -> None:
        super().__init__(interval_s)
        self.cases = 0
        self.samples: list[tuple[float, int, float]] = []
        self._started = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self._process.memory_info().rss / 2**20
            self.samples.append((round(time.monotonic() - self._started, 1), self.cases, round(rss, 1)))
            self._stop.wait(self._interval)

    def progress(self, state: ClusterProgress) -> None:
        self.cases = state.cases


def time_ray_start(cpus: int) -> float:
    import ray

    started = time.monotonic()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False, _node_ip_address="127.0.0.1")
    return time.monotonic() - started


def compare(files: Sequence[Path], model: Path, workdir: Path) -> list[dict]:
    """Local indexer vs Ray with 1 and 2 CPUs on the same files, each into a fresh library."""
    import ray

    rows = []
    with Library.open(workdir / "local", model_path=model) as lib:
        lib.encoder  # loaded outside the clock, as in every run below  # noqa: B018
        started = time.monotonic()
        report = index_paths(lib, files)
        seconds = time.monotonic() - started
    rows.append(dict(run="local indexer", cpus=os.cpu_count(), cases=report.n_added, seconds=round(seconds, 2),
                     cases_per_s=round(report.n_added / seconds, 2)))
    for cpus in (1, 2):
        start_s = time_ray_start(cpus)
        try:
            with Library.open(workdir / f"ray{cpus}", model_path=model) as lib:
                lib.encoder  # noqa: B018
                started = time.monotonic()
                report = index_paths_on_ray(lib, files, ClusterOptions(shard_units=16))
                seconds = time.monotonic() - started
        finally:
            ray.shutdown()
        rows.append(dict(run=f"ray, {cpus} worker CPU(s)", cpus=cpus, cases=report.n_added,
                         seconds=round(seconds + start_s, 2), ray_start_s=round(start_s, 2),
                         cases_per_s=round(report.n_added / (seconds + start_s), 2),
                         cases_per_s_without_start=round(report.n_added / seconds, 2),
                         merge_s=round(report.merge_seconds, 2)))
        log.info("%s", rows[-1])
    return rows


def archive(n: int, model: Path, workdir: Path, cpus: int, shard_units: int) -> dict:
    """``n`` generated cases indexed end to end on a local Ray instance."""
    folder = workdir / "archive"
    started = time.monotonic()
    write_archive(folder, n)
    written_s = time.monotonic() - started
    with RssSampler() as rss, Library.open(workdir / "archive_lib", model_path=model) as lib:
        started = time.monotonic()
        report = index_paths_on_ray(lib, [folder], ClusterOptions(shard_units=shard_units, local_cpus=cpus),
                                    progress=rss.progress)
        seconds = time.monotonic() - started
    curve = rss.samples
    picks = [curve[min(len(curve) - 1, int(len(curve) * f))] for f in (0.1, 0.25, 0.5, 0.75, 1.0)] if curve else []
    return dict(cases=report.n_added, failed=report.n_failed, cpus=cpus, shard_units=shard_units,
                shards=report.shards_total, files_written_s=round(written_s, 1), seconds=round(seconds, 1),
                cases_per_s=round(report.n_added / seconds, 2), merge_s=round(report.merge_seconds, 1),
                merge_ms_per_case=round(1e3 * report.merge_seconds / max(1, report.n_added), 3),
                index_s=round(report.index_seconds, 1),
                driver_rss_mb_peak=max((s[2] for s in curve), default=None),
                driver_rss_mb_at=[dict(seconds=s[0], cases=s[1], rss_mb=s[2]) for s in picks])


def projection(archive_row: dict, cpus: int, workers: Sequence[int] = (8, 32, 128)) -> list[dict]:
    """1M studies on N worker CPUs: per-CPU embedding rate (from the archive run) scaled by N, bounded by the
    driver's serial merge; plus the index top-up at the end."""
    per_cpu = archive_row["cases_per_s"] / cpus
    merge_s = archive_row["merge_ms_per_case"] / 1e3
    out = []
    for n in workers:
        compute_h = 1e6 / (per_cpu * n) / 3600
        merge_h = 1e6 * merge_s / 3600  # overlaps with computing; the run takes the larger of the two
        out.append(dict(worker_cpus=n, compute_h=round(compute_h, 2), merge_h=round(merge_h, 2),
                        total_h=round(max(compute_h, merge_h), 2)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ray_index", description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=60, help="test-split files for the comparison")
    parser.add_argument("--archive-cases", type=int, default=100_000)
    parser.add_argument("--archive-cpus", type=int, default=2)
    parser.add_argument("--shard-units", type=int, default=256)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    model = args.model or default_model_path()
    result: dict = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), model=str(model.name),
                        cores=os.cpu_count(), load_start=round(os.getloadavg()[0], 2))
    with tempfile.TemporaryDirectory(prefix="m3ret_ray_bench_") as tmp:
        workdir = Path(tmp)
        if not args.skip_compare:
            data = shared_data_dir()
            if data is None:
                print("shared data absent (M3RET_DATA): comparison skipped", file=sys.stderr)
            else:
                result["compare"] = compare(sample_files(data, args.sample), model, workdir)
        if args.archive_cases:
            result["archive"] = archive(args.archive_cases, model, workdir, args.archive_cpus, args.shard_units)
            result["projection_1m"] = projection(result["archive"], args.archive_cpus)
    result["load_end"] = round(os.getloadavg()[0], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Why-this-match cost: is caching per-slice embeddings in the catalog worth it?

On real cases of the shared data (a 64-slice CT DICOM series, a LIDC nodule NIfTI, a 2D X-ray), with the bundled
model, this times each step the compare view runs for one (query, result) pair:

1. re-reading the result case from its files (the viewer needs its pixels anyway);
2. per-position embeddings of the query (``explained_positions`` sub-clips) — cached in memory for the query on
   screen, so paid once per query;
3. per-position embeddings of the result — what a catalog cache would save on each result opened;
4. the occlusion heatmaps of the matched pair (2 x (grid^2 + 1) 2D clips).

Each figure is the best of ``--repeat`` runs (the development VM is shared), wall seconds and this process's CPU
seconds. Run: ``python -m benchmarks.explain [--model PATH] [--repeat 3] [--quick]``; results printed as a
markdown table and written to ``benchmarks/results/explain.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

import onnxruntime  # noqa: F401  isort: skip  (before usearch, see engine.vectors)
from engine.config import EXPLAIN_GRID, shared_data_dir
from engine.encoder import Encoder, default_model_path
from engine.explain import explained_positions, match_positions, occlusion_heatmaps, position_embeddings
from engine.io.case import Case
from engine.io.scan import read_path

RESULTS = Path(__file__).resolve().parent / "results" / "explain.json"


def _first_case(path: Path) -> Case:
    return next(c for c in read_path(path) if isinstance(c, Case))


def sample_paths(data: Path) -> dict[str, Path]:
    """kind -> a real case of the shared data (deterministic)."""
    rows = list(csv.DictReader((data / "manifest.csv").open()))
    series = sorted({p.parent for p in (data / "ct" / "adrenalmnist3d").glob("*/*/*.dcm")})
    nifti = next(r["path"] for r in rows if r["dataset"] == "lidc_nodule_voi" and r["split"] == "test")
    xray = next(r["path"] for r in rows if r["modality"] == "xray" and r["split"] == "test")
    return {"CT DICOM series": series[0], "CT NIfTI (LIDC VOI)": data / nifti, "X-ray": data / xray}


def best_of(repeat: int, step: Callable[[], object]) -> tuple[float, float]:
    """(best wall s, CPU s of that run)."""
    runs = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(runs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat")
    args = parser.parse_args(argv)
    data = shared_data_dir()
    if data is None:
        print("shared data absent (M3RET_DATA)")
        return 1
    repeat = 1 if args.quick else args.repeat
    encoder = Encoder(args.model or default_model_path())
    size = encoder.params.size
    encoder.embed_clips([np.zeros((3, encoder.params.frames_2d, size, size), np.float32)])  # warm-up
    rows = []
    for name, path in sample_paths(data).items():
        read_s = best_of(repeat, lambda p=path: _first_case(p))
        case = _first_case(path)
        positions = explained_positions(case)
        embed_s = best_of(repeat, lambda c=case, p=positions: position_embeddings(encoder, c, p))
        cached = position_embeddings(encoder, case, positions)
        match = match_positions(encoder, case, case, query_embeddings=cached)
        q, r, _ = match.best_pair()
        heat_s = best_of(repeat, lambda c=case, q=q, r=r: occlusion_heatmaps(encoder, c, c, q, r))
        rows.append({"case": name, "shape": list(case.shape), "positions": int(len(positions)),
                     "read_s": read_s, "positions_embed_s": embed_s, "heatmaps_s": heat_s})
    table = ["| case | shape | positions | re-read s | per-position embeddings s (CPU s) | heatmaps s (CPU s) |",
             "|---|---|---:|---:|---:|---:|"]
    for row in rows:
        table.append(f"| {row['case']} | {'x'.join(map(str, row['shape']))} | {row['positions']} | "
                     f"{row['read_s'][0]:.2f} | {row['positions_embed_s'][0]:.2f} ({row['positions_embed_s'][1]:.2f}) | "
                     f"{row['heatmaps_s'][0]:.2f} ({row['heatmaps_s'][1]:.2f}) |")
    print("\n".join(table))
    meta = {"model_id": encoder.model_id, "grid": EXPLAIN_GRID, "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "load_average": os.getloadavg(), "repeat": repeat,
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1), encoding="utf-8")
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

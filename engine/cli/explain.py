"""``m3ret explain QUERY|--query-case ID --case ID --out DIR``: why a case matched, as PNGs and JSON.

Writes ``query.png`` / ``result.png`` (the compared frames), ``query_heatmap.png`` / ``result_heatmap.png``
(occlusion heatmaps, warm = supports the match, cool = works against it; ``engine.explain``), ``profile.png``
(similarity of each result slice / frame to the query's, for volumes and videos) and ``explain.json``. The query
frame is ``--position`` (default: the middle slice / frame); the result frame is its best match. Exit status 0,
1 on errors (unknown case, unreadable file), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from engine.charts import line_chart_png
from engine.cli.library_args import UsageError, add_model_option, guarded, open_library, require_existing
from engine.cli.main import add_json_option, add_library_option
from engine.config import EXPLAIN_GRID
from engine.explain import match_positions, n_positions, occlusion_heatmaps, overlay, shown_frame
from engine.io.case import Case
from engine.search import SearchError, read_query_case
from engine.thumbnails import window_to_uint8


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``explain``."""
    parser = subparsers.add_parser("explain", help="matched slice/frame and similarity heatmaps of a pair",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("query", type=Path, nargs="?", metavar="QUERY", help="query file or folder")
    parser.add_argument("--query-case", type=int, default=None, metavar="ID", help="query by a catalogued case")
    parser.add_argument("--case", type=int, required=True, metavar="ID", help="the result case to explain")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the PNGs and JSON")
    parser.add_argument("--position", type=int, default=None, metavar="N",
                        help="query slice/frame to match (default: the middle one)")
    parser.add_argument("--grid", type=int, default=EXPLAIN_GRID, metavar="G",
                        help=f"occlusion grid cells per side (default {EXPLAIN_GRID})")
    add_model_option(parser)
    add_library_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=guarded("explain", run))
    return parser


def run(args: argparse.Namespace) -> int:
    if (args.query is None) == (args.query_case is None):
        raise UsageError("give either QUERY or --query-case ID")
    if not 2 <= args.grid <= 32:
        raise UsageError("--grid must be between 2 and 32")
    if args.query is not None:
        require_existing([args.query])
    with open_library(args) as library:
        result = library.read_case(args.case)
        try:
            query = library.read_case(args.query_case) if args.query_case is not None else read_query_case(args.query)
        except SearchError as exc:
            print(f"m3ret explain: error: {exc}", file=sys.stderr)
            return 1
        encoder = library.encoder
        position = n_positions(query) // 2 if args.position is None else args.position
        if not 0 <= position < n_positions(query):
            raise UsageError(f"--position {position}: the query has {n_positions(query)} slices/frames")
        match = match_positions(encoder, query, result)
        result_position, position_score = match.best_for(position)
        heat = occlusion_heatmaps(encoder, query, result, position, result_position, grid=args.grid)
    args.out.mkdir(parents=True, exist_ok=True)
    files = write_pngs(args.out, query, result, heat, match, position)
    doc = {"query": {"path": str(query.path), "kind": query.kind, "position": position,
                     "n_positions": n_positions(query)},
           "result": {"case_id": args.case, "kind": result.kind, "position": result_position,
                      "n_positions": n_positions(result)},
           "position_score": position_score, "heatmap_score": heat.score, "grid": args.grid,
           "heatmap": "occlusion: sim(pair) - sim(pair with the cell hidden); + supports, - works against",
           "matching": match.to_json(), "files": sorted(files)}
    (args.out / "explain.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    if args.json:
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        q, r, s = match.best_pair()
        print(f"query {query.kind} position {position} -> result case {args.case} position {result_position} "
              f"(similarity {position_score:.3f}); best pair overall: {q} -> {r} ({s:.3f})")
        print(f"wrote {', '.join(sorted(files))} to {args.out}")
    return 0


def display_rgb(case: Case, position: int) -> np.ndarray:
    """The frame at ``position`` windowed for display, ``H W 3`` uint8 RGB."""
    frame = window_to_uint8(shown_frame(case, position), case)
    return frame if frame.ndim == 3 else np.repeat(frame[..., None], 3, axis=-1)


def write_pngs(out: Path, query: Case, result: Case, heat, match, position: int) -> list[str]:  # noqa: ANN001
    """Write the frames, their heatmap overlays and (for volumes / videos) the profile; returns file names."""
    images = {
        "query.png": display_rgb(query, heat.query_position),
        "result.png": display_rgb(result, heat.result_position),
    }
    images["query_heatmap.png"] = overlay(images["query.png"], heat.query)
    images["result_heatmap.png"] = overlay(images["result.png"], heat.result)
    for name, rgb in images.items():
        cv2.imwrite(str(out / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    names = list(images)
    if n_positions(result) > 1:
        positions, sims = match.profile(position)
        (out / "profile.png").write_bytes(line_chart_png(
            positions, sims, f"similarity to query position {position}", x_label="result slice / frame",
            marks=[heat.result_position]))
        names.append("profile.png")
    return names

"""``m3ret inspect PATH``: what the readers find under a file or folder, and what they cannot read.

For every case: kind, modality, shape, spacing, number of source files and path; for every failure its reason.
Exit status 0 even when some files fail; 2 on usage errors (the path does not exist).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engine.cli.main import USAGE_ERROR, add_json_option, add_library_option
from engine.io.case import Case, Failure
from engine.io.scan import SourceUnit, discover, read_unit


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``inspect``."""
    parser = subparsers.add_parser(
        "inspect", help="list the cases (and unreadable files) under a file or folder",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("path", type=Path, help="a file or a folder (searched recursively)")
    add_library_option(parser)  # accepted for uniformity; inspect does not touch a library
    add_json_option(parser)
    parser.set_defaults(func=run)
    return parser


def case_summary(case: Case) -> dict[str, Any]:
    """The JSON-ready description of one case."""
    return {
        "kind": case.kind,
        "modality": case.modality,
        "shape": list(case.shape),
        "spacing": [round(s, 4) for s in case.spacing],
        "files": len(case.source_files),
        "path": str(case.path),
        **({"frame_count": case.frame_count, "fps": case.fps} if case.kind == "video" else {}),
    }


def _format_case(summary: dict[str, Any]) -> str:
    shape = "x".join(str(s) for s in summary["shape"])
    spacing = "x".join(f"{s:g}" for s in summary["spacing"]) or "-"
    return (
        f"{summary['kind']:<8} {summary['modality']:<3} {shape:<16} {spacing:<14} "
        f"{summary['files']:>5}  {summary['path']}"
    )


def _show_progress(args: argparse.Namespace) -> bool:
    return args.path.is_dir() and not args.json and sys.stderr.isatty()


def run(args: argparse.Namespace) -> int:
    """Inspect ``args.path``; prints a table (or JSON with ``--json``)."""
    if not args.path.exists():
        print(f"m3ret inspect: error: {args.path}: no such file or folder", file=sys.stderr)
        return USAGE_ERROR
    started = time.perf_counter()
    show = _show_progress(args)
    units: list[SourceUnit] = []
    failures: list[Failure] = []
    with tqdm(desc="scanning", unit=" files", disable=not show, file=sys.stderr) as bar:
        for item in discover(args.path, progress=bar.update):
            (failures if isinstance(item, Failure) else units).append(item)
    cases: list[dict[str, Any]] = []
    source_bytes = 0
    if not args.json:
        print(f"{'kind':<8} {'mod':<3} {'shape':<16} {'spacing (mm)':<14} {'files':>5}  path")
    for unit in tqdm(units, desc="reading", unit=" units", disable=not show, file=sys.stderr):
        source_bytes += sum(_size(f) for f in unit.files)
        for result in read_unit(unit):
            if isinstance(result, Failure):
                failures.append(result)
                continue
            summary = case_summary(result)
            cases.append(summary)
            if not args.json:
                tqdm.write(_format_case(summary), file=sys.stdout)
    elapsed = time.perf_counter() - started
    totals = {
        "cases": len(cases),
        "failures": len(failures),
        "seconds": round(elapsed, 3),
        "megabytes": round(source_bytes / 1e6, 3),
    }
    if args.json:
        doc = {
            "path": str(args.path),
            "cases": cases,
            "failures": [{"path": str(f.path), "reason": f.reason} for f in failures],
            "summary": totals,
        }
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    if failures:
        print(f"\n{len(failures)} failure(s):")
        for failure in failures:
            print(f"  {failure}")
    rate = len(cases) / elapsed if elapsed > 0 else float("inf")
    print(
        f"\n{len(cases)} case(s), {len(failures)} failure(s), {totals['megabytes']:.1f} MB "
        f"in {elapsed:.1f} s ({rate:.1f} cases/s)"
    )
    return 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0

"""``m3ret list``: the library's cases (id, kind, modality, shape, study date, path), newest first."""

from __future__ import annotations

import argparse
import json
import sys

from engine.catalog import CaseRecord
from engine.cli.library_args import guarded, open_library
from engine.cli.main import add_json_option, add_library_option
from engine.io.case import KINDS


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``list``."""
    parser = subparsers.add_parser("list", help="list the library's cases", description=__doc__.splitlines()[0])
    parser.add_argument("--modality", type=str.upper, action="append", default=None, metavar="CODE")
    parser.add_argument("--kind", choices=KINDS, action="append", default=None)
    parser.add_argument("--text", default=None, help="substring of description, path, ids")
    parser.add_argument("--date-from", default=None, metavar="YYYY-MM-DD")
    parser.add_argument("--date-to", default=None, metavar="YYYY-MM-DD")
    parser.add_argument("--limit", type=int, default=None, metavar="N")
    parser.add_argument("--offset", type=int, default=0, metavar="N")
    add_library_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=guarded("list", run))
    return parser


def case_summary(record: CaseRecord) -> dict[str, object]:
    """JSON-ready fields of a case, without patient identifiers."""
    return {
        "id": record.id, "kind": record.kind, "modality": record.modality,
        "predicted_modality": record.predicted_modality, "modality_confidence": record.modality_confidence,
        "shape": record.shape_tuple,
        "study_date": record.study_date, "description": record.description, "n_files": record.n_files,
        "path": record.path,
    }


def run(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        records = library.catalog.list_cases(
            modality=args.modality, kind=args.kind, text=args.text, date_from=args.date_from,
            date_to=args.date_to, limit=args.limit, offset=args.offset, with_thumbnails=False,
        )
    if args.json:
        json.dump([case_summary(r) for r in records], sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    print(f"{'id':>6} {'kind':<8} {'modality':<18} {'shape':<16} {'date':<10} path")
    for r in records:
        shape = "x".join(str(s) for s in r.shape_tuple)
        print(f"{r.id:>6} {r.kind:<8} {r.modality_text:<18} {shape:<16} {r.study_date or '-':<10} {r.path}")
    print(f"{len(records)} case(s)")
    return 0

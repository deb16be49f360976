"""``m3ret remove ID...``: remove cases from the library (catalog and index; the files are not touched)."""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli.library_args import guarded, open_library
from engine.cli.main import add_json_option, add_library_option


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``remove``."""
    parser = subparsers.add_parser("remove", help="remove cases from the library",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("case_ids", type=int, nargs="+", metavar="ID")
    add_library_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=guarded("remove", run))
    return parser


def run(args: argparse.Namespace) -> int:
    with open_library(args) as library, library.writer.hold(wait=False):  # refused while another writer runs
        existing = set(library.catalog.get_cases(args.case_ids, with_thumbnails=False))
        removed = library.remove_cases(sorted(existing))
    unknown = sorted(set(args.case_ids) - existing)
    if args.json:
        json.dump({"removed": sorted(existing), "unknown": unknown}, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"removed {removed} case(s)")
    if unknown:
        print(f"m3ret remove: error: no case with id {', '.join(map(str, unknown))}", file=sys.stderr)
        return 1
    return 0

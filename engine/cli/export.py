"""``m3ret export --case ID... --out DIR`` (copies) | ``m3ret export --query FILE --out DIR`` (report): without
patient data unless ``--keep-identifiers``.

``--case``: de-identified copies of the cases (``engine.export.deidentify``: DICOM by the PS3.15 basic profile via
dicognito, UIDs and dates consistent across the export; NIfTI / images / videos without identifying names or
metadata) and a report listing them. ``--query``: search the library with FILE and write the report
(``report.html`` with thumbnails inline, ``report.csv``, ``report.json``); ``--copies`` exports the result cases
too. ``export.json`` lists what was written. Exit status 0, 1 on errors (unknown case, missing source file),
2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.cli.library_args import UsageError, add_model_option, guarded, open_library, require_existing
from engine.cli.main import add_json_option, add_library_option
from engine.export.bundle import export_bundle
from engine.export.deidentify import ExportError
from engine.search import SearchError, search_by_path


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``export``."""
    parser = subparsers.add_parser("export", help="de-identified copies of cases, or a report of a query",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=int, nargs="+", default=None, metavar="ID", help="cases to export")
    parser.add_argument("--query", type=Path, default=None, metavar="FILE", help="search with FILE, report it")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="export folder")
    parser.add_argument("-k", "--top", dest="k", type=int, default=10, metavar="K", help="results (default 10)")
    parser.add_argument("--copies", action="store_true", help="with --query: export the result cases too")
    parser.add_argument("--keep-identifiers", action="store_true",
                        help="copy files unchanged and name paths in the report (NOT de-identified)")
    add_model_option(parser)
    add_library_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=guarded("export", run))
    return parser


def run(args: argparse.Namespace) -> int:
    if (args.case is None) == (args.query is None):
        raise UsageError("give either --case ID... or --query FILE")
    if args.k < 1:
        raise UsageError("-k must be at least 1")
    if args.query is not None:
        require_existing([args.query])
    with open_library(args) as library:
        try:
            if args.query is not None:
                case, results = search_by_path(library, args.query, args.k)
                doc = export_bundle(library, [r.case_id for r in results], args.out, copies=args.copies,
                                    keep_identifiers=args.keep_identifiers, query=case,
                                    scores={r.case_id: (r.rank, r.score) for r in results})
            else:
                doc = export_bundle(library, args.case, args.out, copies=True,
                                    keep_identifiers=args.keep_identifiers)
        except (SearchError, ExportError) as exc:
            print(f"m3ret export: error: {exc}", file=sys.stderr)
            return 1
    if args.json:
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    kind = "de-identified" if doc["deidentified"] else "WITH IDENTIFIERS"
    print(f"{len(doc['cases'])} case(s) exported ({kind}), report: {', '.join(doc['report'])} in {args.out}")
    for warning in (w for case in doc["cases"] for w in case["warnings"]):
        print(f"warning: {warning}")
    if doc["labels_summary"]:
        print(f"{doc['labels_summary']} (the library's own labels)")
    return 0

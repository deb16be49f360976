"""``m3ret search PATH | --case ID``: the library's cases most similar to a file, folder or catalogued case.

A PATH is read and embedded on the fly (not added to the library). Filters: ``--modality`` (repeatable),
``--kind``, ``--same-modality`` / ``--cross-modal`` (relative to the query's modality), study date range.
``--json`` prints every result with its raw cosine (``score``), match score and source path(s). A query that is
already in the library (same content) is reported as "this case", not as a result. Scores are shown as a *match*
0-100 against the library's own nearest-neighbour similarities (``engine.score_calibration``). Exit status 0, 1
on errors (unknown case, unreadable query, model mismatch), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.catalog import CaseRecord
from engine.cli.library_args import UsageError, add_model_option, guarded, open_library, require_existing
from engine.cli.main import add_json_option, add_library_option
from engine.io.case import KINDS
from engine.modality import describe as describe_modality
from engine.search import SearchError, SearchFilters, SearchResult, SearchResults, search_by_case, search_by_path


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``search``."""
    parser = subparsers.add_parser("search", help="find the cases most similar to a file or a case",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, nargs="?", metavar="PATH", help="query file or folder")
    parser.add_argument("--case", type=int, default=None, metavar="ID", help="query by a catalogued case id")
    parser.add_argument("-k", "--top", dest="k", type=int, default=10, metavar="K", help="results (default 10)")
    parser.add_argument("--modality", type=str.upper, action="append", default=None, metavar="CODE",
                        help="only these modalities (repeatable)")
    parser.add_argument("--kind", choices=KINDS, action="append", default=None, help="only these kinds")
    same = parser.add_mutually_exclusive_group()
    same.add_argument("--same-modality", action="store_true", help="only the query's modality")
    same.add_argument("--cross-modal", action="store_true", help="only other modalities than the query's")
    parser.add_argument("--date-from", default=None, metavar="YYYY-MM-DD", help="study date on or after")
    parser.add_argument("--date-to", default=None, metavar="YYYY-MM-DD", help="study date on or before")
    parser.add_argument("--query-modality", type=str.upper, default=None, metavar="CODE",
                        help="modality of a query file whose reader does not know it")
    add_model_option(parser)
    add_library_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=guarded("search", run))
    return parser


def run(args: argparse.Namespace) -> int:
    if (args.path is None) == (args.case is None):
        raise UsageError("give either PATH or --case ID")
    if args.k < 1:
        raise UsageError("-k must be at least 1")
    if args.path is not None:
        require_existing([args.path])
    filters = SearchFilters(
        modalities=args.modality, kinds=args.kind, same_modality=args.same_modality,
        cross_modal=args.cross_modal, date_from=args.date_from, date_to=args.date_to,
    )
    with open_library(args) as library:
        try:
            if args.case is not None:
                query = library.catalog.get_case(args.case)
                query_desc = {"case_id": query.id, "kind": query.kind, "modality": query.modality,
                              "modality_text": query.modality_text, "path": query.path}
                results = search_by_case(library, args.case, args.k, filters)
            else:
                case, results = search_by_path(library, args.path, args.k, filters, modality=args.query_modality)
                predicted = results.query_prediction
                query_desc = {"kind": case.kind, "modality": case.modality, "path": str(case.path),
                              "modality_text": describe_modality(case.modality, predicted and predicted.predicted,
                                                                 predicted and predicted.confidence)}
        except SearchError as exc:
            print(f"m3ret search: error: {exc}", file=sys.stderr)
            return 1
        empty_library = library.catalog.count_cases() == 0
    if (args.same_modality or args.cross_modal) and query_desc["modality"] in ("", "OT"):
        print("m3ret search: note: the query's modality is unknown (OT); pass --query-modality CODE",
              file=sys.stderr)
    query_desc["this_case"] = [r.id for r in results.this_case]
    if args.json:
        json.dump({"query": query_desc, "results": [r.to_json() for r in results]}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(f"query: {query_desc['kind']} {query_desc['modality_text']} {query_desc['path']}")
        this_case = [r for r in results.this_case if r.id != args.case]
        print(format_results(results, empty_library, filters.restricts_catalog, this_case))
    return 0


def format_results(results: SearchResults | list[SearchResult], empty_library: bool = False,
                   filtered: bool = False, this_case: Sequence[CaseRecord] = ()) -> str:
    """The library's copies of the query (``this_case``), then the results table (rank, match 0-100, raw cosine,
    case id, kind, modality, path); when there are none, why (an empty library, filters that leave nothing)."""
    lines = [f"this case: #{r.id} {r.path} (in the library; not listed as a result)" for r in this_case]
    lines += [f"{'rank':>4} {'match':>5} {'cosine':>6} {'case':>6} {'kind':<8} {'modality':<18} path"]
    for r in results:
        match = f"{r.match:5.0f}" if r.match is not None else f"{'-':>5}"
        lines.append(f"{r.rank:>4} {match} {r.score:6.3f} {r.case_id:>6} {r.kind:<8} "
                     f"{r.record.modality_text:<18} {r.path}")
    if not results:
        if empty_library:
            lines.append("(no results: the library is empty; add cases with `m3ret index PATH`)")
        elif filtered:
            lines.append("(no results: no other case passes the filters)")
        else:
            lines.append("(no results: the library holds no other case)")
    return "\n".join(lines)

"""``m3ret labels import FILE.csv | set ID KEY=VALUE... | show ID``: the library's own labels and tags.

CSV columns: ``path`` (relative paths resolved against the CSV's folder) or ``case_id``, and ``label``; other
columns are kept as key/value tags. Rows that match no case are listed (not fatal). Exit status 0, 1 when the CSV
cannot be read, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.cli.library_args import UsageError, guarded, open_library, require_existing
from engine.cli.main import add_json_option, add_library_option
from engine.labels import LabelsError, import_labels_csv, label_keys, labels_of, set_labels


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``labels`` with its actions ``import``, ``set`` and ``show``."""
    parser = subparsers.add_parser("labels", help="import, set or show the library's own labels and tags",
                                   description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(title="actions", dest="action", metavar="ACTION")
    imp = actions.add_parser("import", help="labels (and tags) from a CSV file")
    imp.add_argument("csv", type=Path, metavar="FILE.csv")
    put = actions.add_parser("set", help="set labels/tags of one case (KEY= deletes KEY)")
    put.add_argument("case_id", type=int, metavar="ID")
    put.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
    show = actions.add_parser("show", help="labels and tags of cases (all labelled cases without ID)")
    show.add_argument("case_ids", type=int, nargs="*", metavar="ID")
    for sub in (parser, imp, put, show):
        add_library_option(sub)
        add_json_option(sub)
    parser.set_defaults(func=guarded("labels", run))
    return parser


def run(args: argparse.Namespace) -> int:
    if args.action is None:
        raise UsageError("give an action: import, set or show")
    with open_library(args) as library:
        if args.action == "import":
            require_existing([args.csv])
            try:
                report = import_labels_csv(library.catalog, args.csv)
            except LabelsError as exc:
                print(f"m3ret labels: error: {exc}", file=sys.stderr)
                return 1
            if args.json:
                _print_json(report.to_json())
            else:
                print(f"{report.rows} rows, {report.cases_labelled} cases labelled, {len(report.unknown)} unknown")
                for line in report.unknown:
                    print(f"  no case for {line}")
            return 0
        if args.action == "set":
            values = dict(_pair(p) for p in args.pairs)
            set_labels(library.catalog, args.case_id, values)
            args.case_ids = [args.case_id]
        ids = args.case_ids or _labelled_ids(library)
        labels = labels_of(library.catalog, ids)
    if args.json:
        _print_json({str(i): labels.get(i, {}) for i in ids})
    else:
        for case_id in ids:
            pairs = ", ".join(f"{k}={v}" for k, v in sorted(labels.get(case_id, {}).items()))
            print(f"{case_id:>6}  {pairs or '-'}")
    return 0


def _labelled_ids(library) -> list[int]:  # noqa: ANN001
    keys = label_keys(library.catalog)
    if not keys:
        return []
    return sorted(labels_of(library.catalog, library.catalog.filter_case_ids().tolist()))


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{text!r}: expected KEY=VALUE")
    return key.strip(), value.strip()


def _print_json(value: object) -> None:
    json.dump(value, sys.stdout, indent=1)
    sys.stdout.write("\n")

"""``m3ret show ID``: every catalogued field of one case, its source files and its embedding status.

Shows the patient identifiers the catalog holds (the user asked for this case); they are never logged.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from engine.cli.library_args import guarded, open_library
from engine.cli.main import add_json_option, add_library_option


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``show``."""
    parser = subparsers.add_parser("show", help="show one case", description=__doc__.splitlines()[0])
    parser.add_argument("case_id", type=int, metavar="ID")
    add_library_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=guarded("show", run))
    return parser


def run(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        record = library.catalog.get_case(args.case_id)
        embedded = library.model_id is not None and library.catalog.embedding(record.id, library.model_id) is not None
        model_id = library.model_id
    doc = {
        "id": record.id, "uid": record.uid, "kind": record.kind, "modality": record.modality,
        "modality_shown": record.modality_text, "predicted_modality": record.predicted_modality,
        "modality_confidence": record.modality_confidence, "shape": list(record.shape_tuple), "body_part": record.body_part, "study_date": record.study_date,
        "description": record.description, "patient_id": record.patient_id, "patient_name": record.patient_name,
        "study_uid": record.study_uid, "series_uid": record.series_uid, "n_files": record.n_files,
        "fingerprint": record.fingerprint, "reader": record.reader,
        "added_at": datetime.datetime.fromtimestamp(record.added_at, datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "embedded_by": model_id if embedded else None, "thumbnail_bytes": len(record.thumbnail or b""),
        "source_paths": record.source_paths,
    }
    if args.json:
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    for key, value in doc.items():
        if key == "source_paths":
            continue
        print(f"{key:>15}: {value if value is not None else '-'}")
    print(f"{'source files':>15}:")
    for path in record.source_paths:
        print(f"                 {path}")
    return 0

"""``m3ret rebuild-index``: rebuild the vector index from the embeddings stored in the catalog."""

from __future__ import annotations

import argparse
import json
import sys
import time

from engine.cli.library_args import guarded, open_library
from engine.cli.main import add_json_option, add_library_option


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``rebuild-index``."""
    parser = subparsers.add_parser("rebuild-index", help="rebuild the vector index from the catalog",
                                   description=__doc__.splitlines()[0])
    add_library_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=guarded("rebuild-index", run))
    return parser


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    with open_library(args) as library, library.writer.hold(wait=False):  # refused while another writer runs
        size = library.rebuild_index()
        model_id = library.model_id
    seconds = time.perf_counter() - started
    if args.json:
        json.dump({"vectors": size, "model_id": model_id, "seconds": round(seconds, 3)}, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"index rebuilt: {size} vector(s) of model {model_id or '-'} in {seconds:.1f} s")
    return 0

"""``m3ret failures``: the files the indexer could not read, with the reason, most recent first."""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from engine.cli.library_args import guarded, open_library
from engine.cli.main import add_json_option, add_library_option


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``failures``."""
    parser = subparsers.add_parser("failures", help="files that could not be indexed",
                                   description=__doc__.splitlines()[0])
    add_library_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=guarded("failures", run))
    return parser


def run(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        failures = library.catalog.failures()
    if args.json:
        json.dump([{"path": f.path, "reason": f.reason, "at": f.at} for f in failures], sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    for f in failures:
        when = datetime.datetime.fromtimestamp(f.at, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
        print(f"{when}  {f.path}: {f.reason}")
    print(f"{len(failures)} failure(s)")
    return 0

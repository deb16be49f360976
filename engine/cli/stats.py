"""``m3ret stats``: what a library holds (cases per modality and kind, files, failures, model, sizes)."""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli.library_args import guarded, open_library
from engine.cli.main import add_json_option, add_library_option
from engine.library import INDEX_FILE


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``stats``."""
    parser = subparsers.add_parser("stats", help="library statistics", description=__doc__.splitlines()[0])
    add_library_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=guarded("stats", run))
    return parser


def run(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        stats = library.catalog.stats()
        index_file = library.path / INDEX_FILE
        stats.update(
            library=str(library.path), model_id=library.model_id, embed_dim=library.embed_dim,
            vectors=len(library.index), index_bytes=index_file.stat().st_size if index_file.is_file() else 0,
        )
    if args.json:
        json.dump(stats, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    print(f"library:   {stats['library']}")
    print(f"model:     {stats['model_id'] or '-'} (D={stats['embed_dim'] or '-'})")
    print(f"cases:     {stats['cases']}  ({_counts(stats['by_modality'])}; {_counts(stats['by_kind'])})")
    print(f"files:     {stats['files']}")
    print(f"vectors:   {stats['vectors']}")
    print(f"failures:  {stats['failures']}")
    print(f"size:      catalog {stats['catalog_bytes'] / 1e6:.1f} MB, index {stats['index_bytes'] / 1e6:.1f} MB")
    return 0


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"

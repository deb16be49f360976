"""The ``m3ret`` command: one argparse parser, one module per subcommand (pydicom ``cli/main.py`` style).

A subcommand module defines ``add_subparser(subparsers) -> argparse.ArgumentParser``, which registers its
parser and sets ``func`` (``func(args) -> int`` exit status). Registering one is one line in ``SUBCOMMANDS``.
Use ``add_library_option`` / ``add_json_option`` so every subcommand spells the shared options the same way.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# One line per subcommand: the module that registers it.
SUBCOMMANDS: tuple[str, ...] = (
    "engine.cli.inspect",
    "engine.cli.index",
    "engine.cli.search",
    "engine.cli.list",
    "engine.cli.show",
    "engine.cli.remove",
    "engine.cli.rebuild_index",
    "engine.cli.stats",
    "engine.cli.failures",
    "engine.cli.labels",
    "engine.cli.evaluate",
    "engine.cli.explain",
    "engine.cli.export",
    "engine.cli.listen",
    "engine.cli.pacs",
)

USAGE_ERROR = 2


def add_library_option(parser: argparse.ArgumentParser) -> None:
    """``--library DIR``: the library folder (catalog + index); default: the user's default library."""
    parser.add_argument(
        "--library", type=Path, default=None, metavar="DIR",
        help="library folder (catalog + index); default: the per-user default library",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json``: machine-readable output on stdout."""
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand of ``SUBCOMMANDS`` registered."""
    parser = argparse.ArgumentParser(
        prog="m3ret", description="Offline multimodal medical case retrieval (2D images, 3D volumes, videos)."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).add_subparser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``m3ret`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into ``head`` and the like
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (silence the flush at exit)
        return 0

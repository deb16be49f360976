"""The ``m3ret`` command: one argparse parser, one module per subcommand (pydicom ``cli/main.py`` style).

A subcommand module defines ``add_subparser(subparsers) -> argparse.ArgumentParser``, which registers its
parser and sets ``func`` (``func(args) -> int`` exit status). Registering one is one line in ``SUBCOMMANDS``.
Use ``add_library_option`` / ``add_json_option`` so every subcommand spells the shared options the same way.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from engine import __version__
from engine.logging_setup import configure_cli_logging

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
BROKEN_PIPE = 141  # 128 + SIGPIPE: what `yes | head` reports for `yes`


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
    parser.add_argument("--version", action="version", version=f"m3ret {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).add_subparser(subparsers)
    return parser


def reject_unknown(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> None:
    """Unknown arguments: the subcommand's usage and the closest option it has (exits with status 2).

    argparse hands a subcommand's unknown options up to the top-level parser, which prints the top-level usage
    and may already have taken the option's value as a positional argument (``search --top-k 5 FILE``)."""
    sub = _subparser(parser, getattr(args, "command", None)) or parser
    options = [o for action in sub._actions for o in action.option_strings]
    hints = []
    for extra in extras:
        close = difflib.get_close_matches(extra.split("=")[0], options, n=1, cutoff=0.6) if extra.startswith("-") else []
        hints.append(f"{extra} (did you mean {close[0]}?)" if close else extra)
    sub.error("unrecognized arguments: " + " ".join(hints))


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``m3ret`` console script; returns the exit status."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        reject_unknown(parser, args, extras)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    configure_cli_logging(args.verbose)  # library warnings -> the log file; the terminal stays readable
    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 print as \xNN, never raise
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a pipe closed early fails here, not in the interpreter's exit
        return status
    except BrokenPipeError:  # output piped into ``head`` and the like: stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
        return BROKEN_PIPE

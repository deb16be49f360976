"""Shared plumbing of the library subcommands: ``--model``, opening the library, errors -> exit status.

Exit status: 0 ok, 1 runtime error (unreadable model, model mismatch, unknown case, damaged catalog), 2 usage
error (a path that does not exist, conflicting options; argparse's own errors are 2 as well).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from engine.catalog import CatalogError
from engine.encoder import ModelError
from engine.library import Library, LibraryError
from engine.library_lock import LibraryInUseError

log = logging.getLogger(__name__)

RUNTIME_ERROR = 1
USAGE_ERROR = 2


class UsageError(Exception):
    """The command line asks for something impossible (exit status 2)."""


def add_model_option(parser: argparse.ArgumentParser) -> None:
    """``--model PATH``: the ONNX model (default: the bundled one)."""
    parser.add_argument("--model", type=Path, default=None, metavar="PATH",
                        help="ONNX model file (default: the bundled m3ret-default.onnx)")


def open_library(args: argparse.Namespace, create: bool = False) -> Library:
    """The library named by ``--library`` (default library otherwise), with ``--model`` when given.

    Only ``m3ret index`` creates a library (``create=True``); the other commands report a missing one."""
    return Library.open(getattr(args, "library", None), model_path=getattr(args, "model", None),
                        threads=getattr(args, "threads", None), create=create)


def guarded(command: str, body: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a subcommand: known errors become one line on stderr and an exit status, never a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return body(args)
        except UsageError as exc:
            print(f"m3ret {command}: error: {exc}", file=sys.stderr)
            return USAGE_ERROR
        except BrokenPipeError:  # the reader of our output went away (`m3ret list | head`): main handles it
            raise
        except (LibraryError, LibraryInUseError, ModelError, CatalogError, KeyError, OSError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"m3ret {command}: error: {message}", file=sys.stderr)
            log.debug("%s failed", command, exc_info=True)
            return RUNTIME_ERROR

    return run


def require_existing(paths: list[Path]) -> None:
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"{missing[0]}: no such file or folder")

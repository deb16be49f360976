"""``m3ret listen``: a DICOM storage SCP; received series are indexed into the library once complete.

Instances go to ``<library>/inbox/<study>/<series>/`` (written atomically); a series is indexed once no instance
arrived for ``--settle`` seconds and its sender released the association (an aborted series waits for the rest).
Only calling AE titles given by ``--allow`` (or ``allow =`` in pacs.ini; ``*`` = anyone) may send. C-ECHO is
answered. Runs until Ctrl-C or SIGTERM; needs the ``pacs`` extra (pynetdicom). Settings: ``pacs.ini`` (README).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from engine.cli.library_args import add_model_option, guarded
from engine.cli.main import add_library_option
from engine.indexer import IndexReport
from engine.library import Library
from engine.pacs import PacsError
from engine.pacs.inbox import StoredInstance
from engine.pacs.nodes import PacsSettings, split_ae_titles

RUNTIME_ERROR = 1


def add_settings_option(parser: argparse.ArgumentParser) -> None:
    """``--settings FILE``: the PACS settings file (default: pacs.ini in the user config folder)."""
    parser.add_argument("--settings", type=Path, default=None, metavar="FILE",
                        help="PACS settings file (default: pacs.ini in the user config folder)")


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``listen``."""
    parser = subparsers.add_parser("listen", help="receive DICOM (storage SCP) and index complete series",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--ae-title", default=None, metavar="AE", help="our AE title (default: settings, M3RET)")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default: settings, 11112)")
    parser.add_argument("--bind", default="0.0.0.0", metavar="ADDR",
                        help="address to listen on (default: every interface; 127.0.0.1 = this machine only)")
    parser.add_argument("--allow", nargs="+", default=None, metavar="AE",
                        help="calling AE titles allowed to send ('*' = anyone; default: settings)")
    parser.add_argument("--settle", type=float, default=None, metavar="S",
                        help="index a series once no instance arrived for S seconds (default: settings, 10)")
    add_settings_option(parser)
    add_model_option(parser)
    add_library_option(parser)
    parser.set_defaults(func=guarded("listen", run))
    return parser


def open_receiving_library(args: argparse.Namespace, settings: PacsSettings) -> Library:
    """``--library``, else the settings' ``library``, else the default library (created when missing)."""
    return Library.open(args.library or settings.library, model_path=getattr(args, "model", None))


def run(args: argparse.Namespace) -> int:
    from engine.pacs.storage_scp import StorageSCP

    try:
        settings = PacsSettings.load(args.settings)
        allow = [a for text in args.allow for a in ([text] if text == "*" else split_ae_titles(text))] \
            if args.allow else settings.allow
        with open_receiving_library(args, settings) as library:
            scp = StorageSCP(library, args.ae_title or settings.ae_title, args.port or settings.port, allow,
                             settings.settle_seconds if args.settle is None else args.settle, bind=args.bind,
                             on_instance=_print_instance, on_indexed=_print_indexed)
            scp.start()
            print(f"listening as {scp.ae_title} on {args.bind}:{scp.port}; allowed: {', '.join(scp.allow)}; "
                  f"inbox {scp.inbox.root}; Ctrl-C stops", flush=True)
            try:
                _wait_for_stop()
            finally:
                scp.stop()
                print(f"stopped: {scp.stats.received} instance(s) received, {len(scp.stats.refused)} refused; "
                      f"{sum(held for held in scp.completion.pending().values())} series wait for the rest",
                      flush=True)
    except PacsError as exc:
        print(f"m3ret listen: error: {exc}", file=sys.stderr)
        return RUNTIME_ERROR
    return 0


def _print_instance(stored: StoredInstance, calling_ae: str) -> None:
    if sys.stderr.isatty():
        print(f"\rreceived {stored.sop_uid} from {calling_ae}", end="", file=sys.stderr, flush=True)


def _print_indexed(series_dirs: list[Path], report: IndexReport) -> None:
    print(f"indexed {len(series_dirs)} series: {report.summary()}", flush=True)
    for failure in report.failures:
        print(f"  {failure}", flush=True)


def _wait_for_stop() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

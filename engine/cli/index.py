"""``m3ret index PATH...``: add files and folders to a library (incremental; resumable).

Unchanged files are skipped, changed ones re-embedded; ``--prune`` removes cases whose files under PATH are gone;
``--reembed`` re-embeds the whole library with the given (or bundled) model, e.g. after a model update;
``--modality XR`` labels cases whose reader does not know their modality (PNG, JPEG, NIfTI and videos read as
"OT"). Ctrl-C stops cleanly after the current batch; a re-run resumes. Unreadable files are listed at the end and
kept in ``m3ret failures``. Exit status 0 (even with unreadable files), 1 on errors, 2 on usage errors, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from tqdm import tqdm

from engine.cli.library_args import UsageError, add_model_option, guarded, open_library, require_existing
from engine.cli.main import add_json_option, add_library_option
from engine.indexer import IndexProgress, IndexReport, index_paths

INTERRUPTED = 130
FAILURES_SHOWN = 20


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``index``."""
    parser = subparsers.add_parser("index", help="add files and folders to the library (incremental)",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("paths", type=Path, nargs="*", metavar="PATH", help="files or folders (recursive)")
    parser.add_argument("--prune", action="store_true", help="remove cases whose files under PATH are gone")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="reader processes (default: none on 1-2 cores, else cores - 1, at most 8; "
                             "0 = read in this process)")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="encoder threads (default: all)")
    parser.add_argument("--reembed", action="store_true",
                        help="re-embed every case with the model (after a model change); PATH optional")
    parser.add_argument("--modality", type=str.upper, default=None, metavar="CODE",
                        help="modality for cases whose reader does not know it (e.g. XR, US, CT, MR, ES)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N", help="cases per batch/transaction")
    parser.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="read and embed on a Ray cluster ('auto', 'ray://host:port'; no ADDRESS: a local Ray "
                             "instance) in resumable shards; needs the [cluster] extra")
    parser.add_argument("--shard-units", type=int, default=None, metavar="N",
                        help="with --ray: units (files or series) per shard (default 64)")
    parser.add_argument("--ray-actors", type=int, default=None, metavar="N",
                        help="with --ray: embedding actors (default: half the cluster's CPUs' worth)")
    parser.add_argument("--ray-gpus-per-actor", type=float, default=0.0, metavar="G",
                        help="with --ray: GPUs per embedding actor (CUDA execution provider)")
    parser.add_argument("--no-wait", action="store_true",
                        help="when another process is writing to the library, stop at once instead of waiting")
    add_model_option(parser)
    add_library_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=guarded("index", run))
    return parser


def run(args: argparse.Namespace) -> int:
    if args.ray is not None:  # optional extra, imported only when asked for (never by the app or the bundle)
        try:
            from engine.cluster.cli import run_on_ray
        except ImportError as exc:  # the packaged app, or ray not installed
            raise UsageError(f"--ray needs the cluster extra: pip install 'm3ret[cluster]' ({exc})") from exc
        return run_on_ray(args)
    if not args.paths and not args.reembed:
        raise UsageError("give at least one PATH (or --reembed)")
    if args.workers is not None and args.workers < 0:
        raise UsageError("--workers must be >= 0")
    if not args.prune:  # with --prune, a folder that is gone is what is being pruned
        require_existing(args.paths)
    cancel = threading.Event()
    show = not args.json and sys.stderr.isatty()
    with open_library(args, create=True) as library, ProgressBar(show) as bar, CancelOnInterrupt(cancel):
        report = index_paths(
            library, args.paths, progress=bar.update, cancel=cancel, workers=args.workers, prune=args.prune,
            reembed=args.reembed, modality=args.modality, batch_size=max(1, args.batch_size), wait=not args.no_wait,
        )
        total = library.catalog.count_cases()
    print_report(report, total, args)
    return INTERRUPTED if report.cancelled else 0


def report_doc(report: IndexReport, total: int) -> dict:
    """The ``--json`` document of a run."""
    return {
        "added": report.n_added, "updated": report.n_updated, "unchanged": report.n_unchanged,
        "pruned": report.n_pruned, "failed": report.n_failed, "skipped": report.skipped,
        "cancelled": report.cancelled, "seconds": round(report.seconds, 3), "cases_in_library": total,
        "failures": [{"path": str(f.path), "reason": f.reason} for f in report.failures],
    }


def print_report(report: IndexReport, total: int, args: argparse.Namespace, extra: dict | None = None) -> None:
    """The run's summary (and unreadable files) on stdout; ``--json``: ``report_doc`` plus ``extra``."""
    if args.json:
        json.dump({**report_doc(report, total), **(extra or {})}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    if report.failures:
        print(f"{len(report.failures)} file(s) could not be indexed:")
        for failure in report.failures[:FAILURES_SHOWN]:
            print(f"  {failure}")
        if len(report.failures) > FAILURES_SHOWN:
            print(f"  ... and {len(report.failures) - FAILURES_SHOWN} more (m3ret failures)")
    print(f"{report.summary()}; {total} case(s) in the library")


class ProgressBar:
    """A tqdm bar on stderr fed by the indexer's throttled progress callback."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: tqdm | None = None
        self._stage = ""

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def update(self, state: IndexProgress) -> None:
        if state.stage == "waiting":  # another writer holds the library: say so, even without a bar
            print(f"m3ret index: {state.current_path}", file=sys.stderr)
        if not self._enabled:
            return
        if state.stage != self._stage:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            self._stage = state.stage
            if state.stage in ("discovering", "indexing"):
                unit = " files" if state.stage == "discovering" else " units"
                self._bar = tqdm(desc=state.stage, total=state.total, unit=unit, file=sys.stderr, leave=False)
        if self._bar is None:
            return
        self._bar.total = state.total
        self._bar.n = state.done
        self._bar.set_postfix(failed=state.n_failed, unchanged=state.n_skipped, refresh=False)
        self._bar.refresh()


class CancelOnInterrupt:
    """First Ctrl-C asks the indexer to stop after the current batch; a second one interrupts at once."""

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel
        self._previous: object = None

    def __enter__(self) -> "CancelOnInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._cancel.is_set():
            raise KeyboardInterrupt
        self._cancel.set()
        print("\ninterrupted: finishing the current batch (Ctrl-C again to abort)", file=sys.stderr)

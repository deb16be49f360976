"""``m3ret index --ray [ADDRESS] PATH...``: the index subcommand's Ray path (imported only when ``--ray`` is given).

``--ray`` alone starts a local Ray instance (no dashboard) and stops it at the end; ``--ray auto`` joins the
cluster this machine belongs to, ``--ray ray://host:port`` a remote one through Ray Client. Progress on stderr:
shards done / total, cases/s, failures, ETA. Ctrl-C stops after the shard being merged; a re-run merges shards
an earlier run finished and redoes only the others.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from tqdm import tqdm

from engine.cli.index import INTERRUPTED, CancelOnInterrupt, print_report
from engine.cli.library_args import UsageError, open_library, require_existing
from engine.cluster.indexer import ClusterIndexReport, ClusterOptions, ClusterProgress, index_paths_on_ray

ADDRESS_WORDS = ("auto", "local")


def looks_like_address(text: str) -> bool:
    """"auto", "local", "ray://host:port" or "host:port" (anything else after ``--ray`` is a PATH)."""
    if text in ADDRESS_WORDS or text.startswith("ray://"):
        return True
    host, _, port = text.rpartition(":")
    return bool(host) and port.isdigit() and not Path(text).exists()


def run_on_ray(args: argparse.Namespace) -> int:
    """Run ``m3ret index`` on Ray (``args`` from ``engine.cli.index``)."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"--ray needs the cluster extra: pip install 'm3ret[cluster]' ({exc})") from exc
    address = args.ray
    paths = list(args.paths)
    if not looks_like_address(address):  # `--ray PATH ...`: no address given, the word was the first path
        paths.insert(0, Path(address))
        address = "local"
    if not paths and not args.reembed:
        raise UsageError("give at least one PATH (or --reembed)")
    if args.shard_units is not None and args.shard_units < 1:
        raise UsageError("--shard-units must be >= 1")
    if not args.prune:
        require_existing(paths)
    options = ClusterOptions(
        address=None if address == "local" else address,
        actors=args.ray_actors, gpus_per_actor=args.ray_gpus_per_actor,
        **({"shard_units": args.shard_units} if args.shard_units else {}),
    )
    cancel = threading.Event()
    show = not args.json and sys.stderr.isatty()
    with open_library(args, create=True) as library, ShardProgressBar(show) as bar, CancelOnInterrupt(cancel):
        report = index_paths_on_ray(library, paths, options, progress=bar.update, cancel=cancel,
                                    prune=args.prune, reembed=args.reembed, modality=args.modality)
        total = library.catalog.count_cases()
    print_report(report, total, args, extra=shard_fields(report))
    return INTERRUPTED if report.cancelled else 0


def shard_fields(report: ClusterIndexReport) -> dict:
    """The shard counts and timings of a run, for ``--json``."""
    return {
        "shards": {"total": report.shards_total, "computed": report.shards_computed,
                   "reused": report.shards_reused, "unfinished": report.shards_unfinished},
        "merge_seconds": round(report.merge_seconds, 3), "index_seconds": round(report.index_seconds, 3),
    }


class ShardProgressBar:
    """A tqdm bar of shards done / total (tqdm's ETA) with cases/s and failures."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: tqdm | None = None

    def __enter__(self) -> "ShardProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def update(self, state: ClusterProgress) -> None:
        if not self._enabled:
            return
        if state.stage in ("discovering", "starting", "saving", "done"):
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            print(f"m3ret index --ray: {state.stage}", file=sys.stderr)
            return
        if self._bar is None:
            self._bar = tqdm(desc="shards", total=state.shards_total, unit=" shards", file=sys.stderr)
        self._bar.n = state.shards_done
        self._bar.set_postfix(cases_per_s=f"{state.cases_per_s:.1f}", failed=state.n_failed, refresh=False)
        self._bar.refresh()

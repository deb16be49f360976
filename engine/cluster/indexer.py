"""``index_paths_on_ray``: index files and folders into a library with a Ray cluster doing the reading and embedding.

1. In the driver, exactly as ``engine.indexer.index_paths``: discover units, skip those that did not change (same
   fingerprint rules), so a re-run only works on new and changed units.
2. The units are cut into deterministic shards (``engine.cluster.shards``). A shard whose results file is already
   in ``<library>/shards/`` (finished by an earlier, interrupted run) is merged without being recomputed; the
   others go through the Ray Data pipeline (``engine.cluster.pipeline``).
3. Each finished shard is written to its results file (atomically), then merged into the catalog in one
   transaction (cases, f16 vectors, thumbnails, failures, stale cases of re-read units removed), then its file is
   deleted. A driver killed at any point leaves every merged shard committed and every written shard on disk; the
   re-run merges the written ones and redoes only the rest. Nothing is merged twice: a merged shard's units are
   unchanged in the catalog and are not part of the next run's shards.
4. The vector index is brought up to date from the catalog once, at the end (built when there is none).

The library is the one ``index_paths`` makes (same catalog rows and vectors): the desktop app opens it as is.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.cluster.shards import (
    SHARD_SUFFIX,
    Shard,
    ShardResult,
    plan_shards,
    read_shard,
    shard_path,
    write_shard,
)
from engine.config import CLUSTER_SHARD_UNITS, DEFAULT_LIMITS, ReadLimits
from engine.indexer import BATCH_SIZE, IndexReport, _encoder_for, _Pending, _Run, _Throttle
from engine.library import Library

log = logging.getLogger(__name__)

SHARDS_DIR = "shards"  # under the library folder: results of finished, not yet merged shards
PROGRESS_INTERVAL_S = 0.2


@dataclass
class ClusterIndexReport(IndexReport):
    """What a Ray indexing run did, with its shard counts and where the time went."""

    shards_total: int = 0  # shards with work in this run
    shards_reused: int = 0  # finished by an earlier run (results file found): merged, not recomputed
    shards_computed: int = 0  # computed by the pipeline in this run
    shards_unfinished: int = 0  # left for the next run (cancelled, or the pipeline failed)
    merge_seconds: float = 0.0
    index_seconds: float = 0.0

    def summary(self) -> str:
        return (f"{super().summary()}; shards: {self.shards_total} with work, {self.shards_computed} computed, "
                f"{self.shards_reused} reused from an earlier run, {self.shards_unfinished} unfinished")


@dataclass
class ClusterProgress:
    """Where a Ray indexing run is. ``stage``: "discovering", "starting", "indexing", "saving", "done"."""

    stage: str
    shards_done: int
    shards_total: int
    cases: int  # cases written in this run
    cases_per_s: float
    n_failed: int
    n_unchanged: int


@dataclass(frozen=True)
class ClusterOptions:
    """How to reach and use the cluster. ``address``: None = start a local Ray instance, "auto", or
    "ray://host:port". Workers must see the indexed files and the model at the same paths (a shared mount)."""

    address: str | None = None
    shard_units: int = CLUSTER_SHARD_UNITS
    actors: int | None = None  # embedding actors; None: about half the cluster's CPUs' worth
    cpus_per_actor: float | None = None  # None: 1 on clusters of <= 4 CPUs, else 2
    gpus_per_actor: float = 0.0
    local_cpus: int | None = None  # CPUs of a local instance (None: all)
    object_store_bytes: int | None = None  # of a local instance (None: Ray's default)


def index_paths_on_ray(
    library: Library,
    paths: Sequence[Path],
    options: ClusterOptions = ClusterOptions(),
    progress: Callable[[ClusterProgress], None] | None = None,
    cancel: threading.Event | None = None,
    prune: bool = False,
    *,
    reembed: bool = False,
    modality: str | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> ClusterIndexReport:
    """Index ``paths`` into ``library`` on a Ray cluster; see the module docstring. Same options as
    ``engine.indexer.index_paths`` (``prune``, ``reembed``, ``modality``) plus where and how to run. Holds the
    library's writer lock for the whole run (``engine.library_lock``), as the local indexer does."""
    cancel = cancel or threading.Event()
    with library.writer.hold(wait=True, cancel=cancel):  # one writer per library, local or on Ray
        return _index_paths_on_ray(library, paths, options, progress, cancel, prune, reembed=reembed,
                                   modality=modality, limits=limits)


def _index_paths_on_ray(
    library: Library,
    paths: Sequence[Path],
    options: ClusterOptions,
    progress: Callable[[ClusterProgress], None] | None,
    cancel: threading.Event,
    prune: bool,
    *,
    reembed: bool,
    modality: str | None,
    limits: ReadLimits,
) -> ClusterIndexReport:
    started = time.monotonic()
    report = ClusterIndexReport()
    encoder = _encoder_for(library, reembed)
    run = _Run(library, encoder, report, _Throttle(None), cancel, limits, BATCH_SIZE, modality)
    notify = _Progress(progress, report, started)
    roots = [Path(p).expanduser().absolute() for p in paths]

    notify("discovering", force=True)
    if roots:
        units = run.discover(roots, prune)
    else:
        units = run.catalog_units() if reembed else []
    pending = run.classify(units) if not cancel.is_set() else []
    by_key = {item.unit.key: item for item in pending}
    shards = plan_shards(units, set(by_key), encoder.model_id, options.shard_units)
    report.shards_total = notify.total = len(shards)
    merger = _Merger(run, library.path / SHARDS_DIR, by_key, report)

    todo = []
    for shard in shards:  # finished by an earlier run: merge, do not recompute
        result = read_shard(merger.file(shard)) if merger.file(shard).is_file() else None
        if result is None:
            todo.append(shard)
        elif not cancel.is_set():
            merger.merge(shard, result, written=True)
            report.shards_reused += 1
            notify("indexing")
    if todo and not cancel.is_set():
        notify("starting", force=True)
        with ray_session(options):
            settings = _pipeline_settings(library, encoder, limits, run.modality, options)
            by_number = {s.number: s for s in todo}
            from engine.cluster.pipeline import run_pipeline

            for number, result in run_pipeline(todo, settings):
                merger.merge(by_number[number], result, written=False)
                report.shards_computed += 1
                notify("indexing")
                if cancel.is_set():
                    break
    report.shards_unfinished = report.shards_total - report.shards_reused - report.shards_computed
    if not report.shards_unfinished and not cancel.is_set():
        _remove_leftovers(library.path / SHARDS_DIR)

    if prune and roots and not cancel.is_set():
        run.prune(roots)
    run.flush_records()
    if roots and not cancel.is_set() and not report.shards_unfinished:
        library.catalog.clear_failures_under(roots, keep=[str(f.path) for f in report.failures])
    notify("saving", force=True)
    index_started = time.monotonic()
    library.refresh_index()  # once: top the saved index up from the catalog (or build it)
    report.index_seconds = time.monotonic() - index_started
    report.cancelled = cancel.is_set()
    report.seconds = time.monotonic() - started
    notify("done", force=True)
    log.info("indexing on ray %s", report.summary())
    return report


class _Merger:
    """Writes a finished shard's results file, merges it in one transaction, then deletes the file."""

    def __init__(self, run: _Run, folder: Path, pending: dict[str, _Pending], report: ClusterIndexReport) -> None:
        self.run = run
        self.folder = folder
        self.pending = pending
        self.report = report

    def file(self, shard: Shard) -> Path:
        return shard_path(self.folder, shard.digest)

    def merge(self, shard: Shard, result: ShardResult, written: bool) -> None:
        if not written:
            write_shard(self.folder, shard.digest, result)
        started = time.monotonic()
        items = [self.pending[unit.key] for unit in shard.units]
        self.run.commit(items, result.cases, result.vectors, result.failures)
        self.run.done += len(shard.units)
        self.file(shard).unlink(missing_ok=True)
        self.report.merge_seconds += time.monotonic() - started


class _Progress:
    """Throttled ``ClusterProgress`` callbacks (always on a new stage or when forced)."""

    def __init__(self, callback: Callable[[ClusterProgress], None] | None, report: ClusterIndexReport,
                 started: float) -> None:
        self.callback = callback
        self.report = report
        self.started = started
        self.total = 0
        self._last = 0.0
        self._stage = ""
        self._indexing_since: float | None = None

    def __call__(self, stage: str, force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if stage == "indexing" and self._indexing_since is None:
            self._indexing_since = now
        if not (force or stage != self._stage or now - self._last >= PROGRESS_INTERVAL_S):
            return
        self._last, self._stage = now, stage
        report = self.report
        cases = report.n_embedded
        elapsed = now - (self._indexing_since or now)
        self.callback(ClusterProgress(
            stage=stage, shards_done=report.shards_reused + report.shards_computed, shards_total=self.total,
            cases=cases, cases_per_s=cases / elapsed if elapsed > 0 else 0.0, n_failed=report.n_failed,
            n_unchanged=report.n_unchanged,
        ))


def _remove_leftovers(folder: Path) -> None:
    """After a complete run: files of shards merged by a run killed before it deleted them, partial writes."""
    if folder.is_dir():
        for leftover in folder.iterdir():
            if leftover.suffix in (SHARD_SUFFIX, ".tmp"):
                leftover.unlink(missing_ok=True)


@contextmanager
def ray_session(options: ClusterOptions) -> Iterator[None]:
    """Connect to ``options.address`` or start a local Ray instance (no dashboard) for the block; a session the
    caller already opened (``ray.is_initialized()``) is used as is and left open."""
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs: dict = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    if options.address in (None, "", "local"):
        # address="local": always a new instance, never a cluster that happens to run on this machine
        # 127.0.0.1: a local instance listens on the loopback interface only
        kwargs.update(address="local", num_cpus=options.local_cpus or os.cpu_count() or 1,
                      _node_ip_address="127.0.0.1")
        if options.object_store_bytes:
            kwargs.update(object_store_memory=options.object_store_bytes)
        ray.init(**kwargs)
    else:
        ray.init(address=options.address, **kwargs)
    try:
        yield
    finally:
        ray.shutdown()


def _pipeline_settings(library: Library, encoder, limits: ReadLimits, modality: str | None,  # noqa: ANN001
                       options: ClusterOptions):  # noqa: ANN202
    import ray

    from engine.cluster.pipeline import PipelineSettings

    total_cpus = float(ray.cluster_resources().get("CPU", 1.0))
    # half the CPUs embed, half read; on a 1-CPU cluster both stages share the one CPU (else readers starve)
    cpus_per_actor = options.cpus_per_actor or min(1.0 if total_cpus <= 4 else 2.0, total_cpus / 2)
    actors = options.actors or max(1, int(total_cpus // (2 * cpus_per_actor)))
    log.info("ray cluster: %.1f CPUs; %d embedding actor(s) x %.1f CPU", total_cpus, actors, cpus_per_actor)
    return PipelineSettings(
        model_path=encoder.model_path.absolute(), model_id=encoder.model_id, params=encoder.params, limits=limits,
        modality=modality, actors=actors, cpus_per_actor=cpus_per_actor, gpus_per_actor=options.gpus_per_actor,
        cpus_per_reader=min(1.0, total_cpus / 2),
    )


__all__ = ["ClusterIndexReport", "ClusterOptions", "ClusterProgress", "index_paths_on_ray", "ray_session"]

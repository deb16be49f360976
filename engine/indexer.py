"""Index files and folders into a library: discover -> read + preprocess (worker processes) -> embed -> write.

Pipeline:

1. ``engine.io.scan.discover`` walks every path (headers only) into ``SourceUnit``s (a file, or a DICOM series).
2. Each unit is compared with the catalog: a unit whose files all have the recorded size and mtime (or, when
   those changed, the same content fingerprint), whose file set is that of its cases, and whose cases all have
   an embedding by the library's model is *unchanged* and skipped without being read.
3. Changed and new units are read, preprocessed to clips and thumbnailed in reader processes (``spawn``), with
   at most ``2 * workers`` units in flight, so memory stays bounded whatever the archive size (``workers=0``,
   the default on 1-2 cores, and runs with fewer than ``POOL_MIN_UNITS`` units read in this process instead,
   except DICOM units, read in one reader process when there are that many: gdcm aborts on some broken files).
   A unit read in this process is journaled first (``engine.crash_journal``): after a native abort the next
   run reads it in a reader process of its own and quarantines it if that dies too.
   A reader process that dies is replaced; only the unit that kills one twice is recorded as a failure.
4. The parent embeds clips in batches (ONNX Runtime) and is the only writer: one catalog transaction per batch
   (cases, files, embeddings, thumbnails, failures; stale cases of a re-read unit deleted), then the vectors go
   into the index. The index file is saved atomically at the end; after a crash the catalog (the truth) tops it
   up when the library is next opened, and a re-run resumes: what was committed is unchanged and skipped.
5. ``prune=True`` removes cases whose source files under the given paths have disappeared.

Progress goes to a callback at most ~10 times a second; ``cancel`` (a ``threading.Event``) is checked between
units; a cancelled run leaves the catalog consistent (uncommitted work is simply redone next time).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.catalog import FileState, NewCase
from engine.config import DEFAULT_LIMITS, ReadLimits
from engine.crash_journal import CRASH_REASON, HANG_REASON, CrashJournal
from engine.encoder import Encoder
from engine.io.case import Case, Failure
from engine.io.fingerprint import file_fingerprint
from engine.io.scan import SourceUnit, discover, iter_unit
from engine.library import Library
from engine.modality import UNKNOWN_MODALITIES, apply_predictions
from engine.preprocess import PreprocessParams, case_to_clip
from engine.thumbnails import make_thumbnail
from engine.time_budget import UnitTimeout, time_budget

log = logging.getLogger(__name__)

BATCH_SIZE = 32  # cases per embedding batch and per catalog transaction
MAX_BATCH_BYTES = 64 * 2**20  # clips held before a batch is embedded (about 20 volume/video clips)
POOL_MIN_UNITS = 8  # fewer units to read than this: read in this process (starting workers costs seconds)
PROGRESS_INTERVAL_S = 0.1  # at most ~10 progress callbacks a second
# Readers whose decoders are native code known to abort the process on broken data (gdcm's uncaught C++
# exceptions): with no reader processes, their units are still read in one (when there are enough of them).
NATIVE_CODEC_READERS = frozenset({"dicom"})


@dataclass
class IndexProgress:
    """Where an indexing run is. ``stage``: "discovering", "indexing", "pruning", "saving", "done"."""

    done: int
    total: int | None
    current_path: str
    stage: str
    n_failed: int
    n_skipped: int


@dataclass
class IndexReport:
    """What an indexing run did."""

    n_added: int = 0
    n_updated: int = 0
    n_unchanged: int = 0
    n_failed: int = 0
    n_pruned: int = 0
    failures: list[Failure] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> files left out (text files, tables, ...)

    @property
    def n_embedded(self) -> int:
        return self.n_added + self.n_updated

    @property
    def n_skipped_files(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        state = "cancelled" if self.cancelled else "done"
        text = (
            f"{state} in {self.seconds:.1f} s: {self.n_added} added, {self.n_updated} updated, "
            f"{self.n_unchanged} unchanged, {self.n_pruned} pruned, {self.n_failed} failed"
        )
        if self.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items(), key=lambda i: -i[1]))
            text += f"; {self.n_skipped_files} file(s) skipped: {reasons}"
        return text


@dataclass
class _Prepared:
    """A unit read and preprocessed by a worker: cases without pixels, their clips, failures."""

    unit: SourceUnit
    cases: list[NewCase]
    clips: list[np.ndarray]  # each float32 3 T H W
    failures: list[Failure]


@dataclass
class _Pending:
    """A unit to read, with the cases it held before (deleted unless the unit yields them again)."""

    unit: SourceUnit
    old_case_ids: set[int]
    crashes: int = 0  # reader processes that died while this unit was in flight


def default_workers() -> int:
    """Reader processes: none on 1-2 cores, else one per core beyond the first (at most 8).

    Measured on a 2-core VM (benchmarks/README.md, "Indexing and search"): the encoder's threads already use both
    cores, and reading in the indexing process was faster than one reader process for 2D, volumes and videos."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores - 1)


def index_paths(
    library: Library,
    paths: Sequence[Path],
    progress: Callable[[IndexProgress], None] | None = None,
    cancel: threading.Event | None = None,
    workers: int | None = None,
    prune: bool = False,
    *,
    reembed: bool = False,
    modality: str | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    batch_size: int = BATCH_SIZE,
    wait: bool = True,
) -> IndexReport:
    """Index ``paths`` (files or folders) into ``library``; see the module docstring.

    ``workers=0`` reads in this process (no pool). ``reembed=True`` switches the library to its encoder's model
    when it differs, then every case without an embedding by that model is re-read and embedded (under ``paths``,
    or, with no ``paths``, every catalogued case); an interrupted re-embedding resumes where it stopped.
    ``modality`` is given to cases whose reader does not know theirs ("OT", e.g. PNG, NIfTI, videos).
    The library's writer lock is held for the whole run: when another writer holds it, ``wait=True`` waits
    (progress stage "waiting" says who holds it; ``cancel`` stops waiting) and ``wait=False`` raises
    ``LibraryInUseError`` at once.
    """
    started = time.monotonic()
    cancel = cancel or threading.Event()
    notify = _Throttle(progress)

    def waiting(message: str) -> None:
        notify(IndexProgress(0, None, message, "waiting", 0, 0), force=True)

    with library.writer.hold(wait=wait, on_wait=waiting, cancel=cancel):  # one writer per library
        library.refresh_index()  # catch up with a writer that ran before this one got the lock
        report = _index_locked(library, paths, notify, cancel, workers, prune, reembed, modality, limits,
                               batch_size)
    report.seconds = time.monotonic() - started
    notify(IndexProgress(report.n_embedded, None, "", "done", report.n_failed, report.n_unchanged), force=True)
    log.info("indexing %s", report.summary())
    return report


def _index_locked(library: Library, paths: Sequence[Path], notify: "_Throttle", cancel: threading.Event,
                  workers: int | None, prune: bool, reembed: bool, modality: str | None, limits: ReadLimits,
                  batch_size: int) -> IndexReport:
    """``index_paths`` once the writer lock is held."""
    report = IndexReport()
    encoder = _encoder_for(library, reembed)
    roots = [Path(p).expanduser().absolute() for p in paths]
    run = _Run(library, encoder, report, notify, cancel, limits, batch_size, modality)

    if roots:
        units = run.discover(roots, prune)
    else:
        units = run.catalog_units() if reembed else []
    if not cancel.is_set():
        pending = run.classify(units)
        run.read_and_write(pending, default_workers() if workers is None else workers)
    if prune and roots and not cancel.is_set():
        run.prune(roots)
    run.flush_records()
    if roots and not cancel.is_set():  # what failed before under these paths and did not fail now is resolved
        library.catalog.clear_failures_under(roots, keep=[str(f.path) for f in report.failures])
    notify(IndexProgress(report.n_embedded, None, "", "saving", report.n_failed, report.n_unchanged), force=True)
    library.save_index()
    report.cancelled = cancel.is_set()
    return report


def _encoder_for(library: Library, reembed: bool) -> Encoder:
    if not reembed:
        return library.encoder
    encoder = Encoder.shared(library.model_path, threads=library.threads)
    if library.model_id != encoder.model_id:
        log.info("re-embedding library %s with model %s", library.path, encoder.model_id)
        library.switch_model(encoder)
    return library.encoder


class _Throttle:
    """Calls the progress callback at most every ``PROGRESS_INTERVAL_S``; always on a new stage or when forced."""

    def __init__(self, callback: Callable[[IndexProgress], None] | None) -> None:
        self._callback = callback
        self._last = 0.0
        self._stage = ""

    def __call__(self, state: IndexProgress, force: bool = False) -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        if force or state.stage != self._stage or now - self._last >= PROGRESS_INTERVAL_S:
            self._last, self._stage = now, state.stage
            self._callback(state)


class _Run:
    """The state of one indexing run (the parent process's side: classification, embedding, writing)."""

    def __init__(self, library: Library, encoder: Encoder, report: IndexReport, notify: _Throttle,
                 cancel: threading.Event, limits: ReadLimits, batch_size: int, modality: str | None) -> None:
        self.library = library
        self.catalog = library.catalog
        self.encoder = encoder
        self.model_id = encoder.model_id
        self.report = report
        self.notify = notify
        self.cancel = cancel
        self.limits = limits
        self.batch_size = max(1, batch_size)
        self.modality = modality.upper() if modality else None
        self.seen: set[int] = set()  # case ids found (unchanged or written) in this run
        self.total = 0
        self.done = 0
        self._failures: list[Failure] = []  # not yet committed
        self._touched: list[FileState] = []
        self.journal = CrashJournal(library.path)
        self.suspects = set(self.journal.recover())  # the last run died reading these: read them in a child

    # ---- 1. discover ---------------------------------------------------------------------------------------

    def discover(self, roots: list[Path], prune: bool = False) -> list[SourceUnit]:
        """Every unit under ``roots``; a root that is gone is a failure, or, when pruning, nothing to index."""
        units: list[SourceUnit] = []
        examined = 0

        def count(n: int) -> None:
            nonlocal examined
            examined += n
            self._progress("discovering", str(root), total=None, done=examined)

        seen_keys: set[str] = set()  # overlapping paths (a folder and a file in it) give each unit once
        for root in roots:
            if prune and not root.exists():
                continue
            for item in discover(root, self.limits, progress=count, skipped=self._skip,
                                 exclude=[self.library.path]):
                if self.cancel.is_set():
                    return units
                if isinstance(item, Failure):
                    self._fail(item)
                elif item.key not in seen_keys:
                    seen_keys.add(item.key)
                    units.append(_absolute(item))
        return units

    def catalog_units(self) -> list[SourceUnit]:
        """Every catalogued case's unit (re-embedding without paths)."""
        units: dict[str, SourceUnit] = {}
        for record in self.catalog.list_cases(with_thumbnails=False):
            files = tuple(Path(p) for p in record.source_paths)
            known = units.get(record.unit_key)
            merged = tuple(sorted(set(files) | set(known.files))) if known else files
            units[record.unit_key] = SourceUnit(record.reader, merged, record.unit_key)
        return list(units.values())

    # ---- 2. skip what did not change -------------------------------------------------------------------------

    def classify(self, units: list[SourceUnit]) -> list[_Pending]:
        """Split units into unchanged ones (skipped, their cases marked seen) and ones to read."""
        self.total = len(units)
        embedded = set(self.catalog.embedding_ids(self.model_id).tolist())
        pending: list[_Pending] = []
        for start in range(0, len(units), 500):
            chunk = units[start : start + 500]
            states = self.catalog.file_states(str(f) for u in chunk for f in u.files)
            owners_all = {cid for u in chunk for f in u.files for cid, _ in states.get(str(f), [])}
            owner_files = self.catalog.case_file_paths(owners_all)
            for unit in chunk:
                if self.cancel.is_set():
                    return pending
                owners = {cid for f in unit.files for cid, _ in states.get(str(f), [])}
                quarantined = self.journal.quarantined(unit.key, unit.files)
                if quarantined:
                    self._fail(Failure(_unit_path(unit), quarantined))
                    self.done += 1
                elif self._unchanged(unit, states, owners, owner_files, embedded):
                    self.seen |= owners
                    self.report.n_unchanged += len(owners)
                    self.done += 1
                    self._progress("indexing", str(unit.files[0]))
                else:
                    pending.append(_Pending(unit, owners))
        if self.modality:  # unchanged cases indexed before without a modality get this one too
            self.catalog.set_unknown_modality(self.seen, self.modality, UNKNOWN_MODALITIES)
        return pending

    def _unchanged(self, unit: SourceUnit, states: dict[str, list[tuple[int, FileState]]], owners: set[int],
                   owner_files: dict[int, set[str]], embedded: set[int]) -> bool:
        names = {str(f) for f in unit.files}
        if not owners or not owners <= embedded:
            return False
        if set().union(*(owner_files.get(cid, set()) for cid in owners)) != names:
            return False
        touched: list[FileState] = []
        for name in names:
            recorded = states.get(name)
            if not recorded:
                return False
            old = recorded[0][1]
            try:
                st = os.stat(name)
            except OSError:
                return False
            if st.st_size == old.size and st.st_mtime == old.mtime:
                continue
            if st.st_size != old.size or file_fingerprint(name) != old.fingerprint:
                return False
            touched.append(FileState(name, st.st_size, st.st_mtime, old.fingerprint))
        self._touched.extend(touched)
        return True

    # ---- 3-4. read in workers, embed and write here ----------------------------------------------------------

    def read_and_write(self, pending: list[_Pending], workers: int) -> None:
        params = self.encoder.params
        batch: list[tuple[_Pending, _Prepared]] = []
        n_cases = n_bytes = 0
        for item in self._prepared(pending, workers, params):
            batch.append(item)
            n_cases += len(item[1].cases)
            n_bytes += sum(clip.nbytes for clip in item[1].clips)
            if n_cases >= self.batch_size or n_bytes >= MAX_BATCH_BYTES:
                self._write(batch)
                batch, n_cases, n_bytes = [], 0, 0
            if self.cancel.is_set():
                return  # the uncommitted batch is redone next run
        self._write(batch)
        self._progress("indexing", "", force=True)  # the stage's final count, whatever the throttle let through

    def _prepared(self, pending: list[_Pending], workers: int, params: PreprocessParams
                  ) -> Iterator[tuple[_Pending, _Prepared]]:
        if workers <= 0 or len(pending) < POOL_MIN_UNITS:
            native = [p for p in pending if p.unit.reader in NATIVE_CODEC_READERS]
            if len(native) < POOL_MIN_UNITS:
                yield from self._prepared_here(pending, params)
                return
            # DICOM goes through native codecs (gdcm, CharLS, OpenJPEG) that can abort the process on broken
            # data: read it in one reader process, so such an abort fails that unit, not the run
            yield from self._prepared_here([p for p in pending if p.unit.reader not in NATIVE_CODEC_READERS], params)
            yield from self._prepared_in_pool(native, 1, params)
            return
        yield from self._prepared_in_pool(pending, workers, params)

    def _prepared_here(self, pending: list[_Pending], params: PreprocessParams
                       ) -> Iterator[tuple[_Pending, _Prepared]]:
        """Read units in this process, each journaled (engine.crash_journal); suspects in a process of their own."""
        for item in pending:
            if self.cancel.is_set():
                return
            self._progress("indexing", str(item.unit.files[0]))
            if item.unit.key in self.suspects:
                yield item, self._prepared_isolated(item, params)
                continue
            with self.journal.reading(item.unit.key, item.unit.files):  # a native abort here is attributable
                prepared = prepare_unit(item.unit, self.limits, params, self.modality)
            yield item, prepared

    def _prepared_isolated(self, item: _Pending, params: PreprocessParams) -> _Prepared:
        """Read a suspect unit (the last run died reading it) in a reader process of its own: if that dies or
        overruns, the unit is quarantined (``engine.crash_journal``) and this run goes on."""
        pool = _start_pool(1)
        try:
            future = pool.submit(prepare_unit, item.unit, self.limits, params, self.modality)
            try:
                return future.result(timeout=_hard_deadline(self.limits))
            except BrokenProcessPool:
                reason = CRASH_REASON
            except FuturesTimeout:
                _kill_pool(pool)
                reason = HANG_REASON
            except Exception as exc:  # noqa: BLE001 (an unexpected worker error fails that unit only)
                return _failed(item.unit, f"reader process failed ({type(exc).__name__}: {exc})")
            self.journal.add(item.unit.key, item.unit.files, reason)
            return _failed(item.unit, reason)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _prepared_in_pool(self, pending: list[_Pending], workers: int, params: PreprocessParams
                          ) -> Iterator[tuple[_Pending, _Prepared]]:
        """Read units in ``workers`` processes, at most ``2 * workers`` in flight.

        A reader process that dies (a decoder crash, the OOM killer) breaks the pool: it is restarted and the
        units that were in flight are retried one at a time, so only the unit that kills a process again is
        recorded as a failure."""
        queue, suspects = deque(pending), deque()
        in_flight: dict[Future[_Prepared], _Pending] = {}
        deadline = _hard_deadline(self.limits)
        pool = _start_pool(workers)
        last_done = time.monotonic()  # nothing finishing for ``deadline`` s: the oldest units are stuck

        def submit(item: _Pending) -> None:
            in_flight[pool.submit(prepare_unit, item.unit, self.limits, params, self.modality)] = item

        try:
            while queue or suspects or in_flight:
                if self.cancel.is_set():
                    return
                if suspects and not in_flight:  # a suspect runs alone: if the pool breaks, it was the culprit
                    submit(suspects.popleft())
                while queue and not suspects and len(in_flight) < 2 * workers:
                    submit(queue.popleft())
                finished, _ = wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
                if finished:
                    last_done = time.monotonic()
                elif deadline and time.monotonic() - last_done > deadline:  # stuck in native code past the
                    # readers' own budget: the oldest units (one per process) fail, the pool is killed
                    for future in list(in_flight)[:workers]:
                        item = in_flight.pop(future)
                        self.journal.add(item.unit.key, item.unit.files, HANG_REASON)
                        yield item, _failed(item.unit, HANG_REASON)
                    queue.extendleft(in_flight.values())  # innocent: read again
                    in_flight.clear()
                    _kill_pool(pool)
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = _start_pool(workers)
                    last_done = time.monotonic()
                    continue
                broken = False
                for future in finished:
                    item = in_flight.pop(future)
                    self._progress("indexing", str(item.unit.files[0]))
                    try:
                        prepared = future.result()
                    except BrokenProcessPool:
                        broken = True
                        if item.crashes:
                            prepared = _failed(item.unit, "reader process crashed while reading it")
                            self.journal.add(item.unit.key, item.unit.files, CRASH_REASON)
                        else:
                            item.crashes += 1
                            suspects.append(item)
                            continue
                    except Exception as exc:  # noqa: BLE001 (an unexpected worker error fails that unit only)
                        prepared = _failed(item.unit, f"reader process failed ({type(exc).__name__}: {exc})")
                    yield item, prepared
                if broken:
                    for future, item in in_flight.items():  # they died with the pool: retry them too
                        item.crashes += 1
                        suspects.append(item)
                    in_flight.clear()
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = _start_pool(workers)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _write(self, batch: list[tuple[_Pending, _Prepared]]) -> None:
        cases = [c for _, p in batch for c in p.cases]
        clips = [clip for _, p in batch for clip in p.clips]
        failures = [failure for _, prepared in batch for failure in prepared.failures]
        vectors = self.encoder.embed_clips(clips) if clips else np.zeros((0, self.encoder.embed_dim), np.float32)
        ids, stale = self.commit([item for item, _ in batch], cases, vectors, failures)
        index = self.library.index
        if stale:
            index.remove(np.asarray(sorted(stale), dtype=np.int64))
        index.add(ids, vectors)
        self.done += len(batch)
        self._progress("indexing", str(batch[-1][0].unit.files[0]) if batch else "")

    def commit(self, items: Sequence[_Pending], cases: list[NewCase], vectors: np.ndarray,
               failures: Sequence[Failure]) -> tuple[np.ndarray, set[int]]:
        """One catalog transaction for the units ``items``: their ``cases`` with ``vectors [N, D]``, their read
        failures, and the deletion of the cases they held before and no longer yield (also used by
        ``engine.cluster`` to merge a shard). Returns (ids written int64, stale ids deleted)."""
        apply_predictions(self.encoder.modality_head, cases, vectors)  # files that do not say their modality
        for failure in failures:
            self._fail(failure)
        stale = set().union(*(item.old_case_ids for item in items)) if items else set()
        written = self.catalog.write_batch(
            cases, vectors, self.model_id, delete_ids=stale, failures=self._failures, touched=self._touched
        )
        self._failures, self._touched = [], []
        ids = np.asarray([case_id for case_id, _ in written], dtype=np.int64)
        stale -= set(ids.tolist())
        for _, created in written:
            if created:
                self.report.n_added += 1
            else:
                self.report.n_updated += 1
        self.seen.update(ids.tolist())
        return ids, stale

    # ---- 5. prune ------------------------------------------------------------------------------------------

    def prune(self, roots: list[Path]) -> None:
        self._progress("pruning", "", force=True)
        gone = sorted(self.catalog.case_ids_under(roots) - self.seen)
        if gone:
            self.report.n_pruned = self.library.remove_cases(gone)

    def flush_records(self) -> None:
        """Commit failures and refreshed file stats not yet written with a batch."""
        if self._failures or self._touched:
            self.catalog.write_batch([], None, self.model_id, failures=self._failures, touched=self._touched)
            self._failures, self._touched = [], []

    # ---- helpers -------------------------------------------------------------------------------------------

    def _skip(self, path: Path, reason: str) -> None:
        self.report.skipped[reason] = self.report.skipped.get(reason, 0) + 1
        log.debug("%s: skipped, %s", path, reason)

    def _fail(self, failure: Failure) -> None:
        self.report.failures.append(failure)
        self.report.n_failed += 1
        self._failures.append(failure)
        if len(self._failures) >= 1000:
            self.catalog.record_failures(self._failures)
            self._failures = []

    def _progress(self, stage: str, path: str, total: int | None = -1, done: int | None = None,
                  force: bool = False) -> None:
        self.notify(
            IndexProgress(
                done=self.done if done is None else done, total=self.total if total == -1 else total,
                current_path=path, stage=stage, n_failed=self.report.n_failed, n_skipped=self.report.n_unchanged,
            ),
            force=force,
        )


def prepare_unit(unit: SourceUnit, limits: ReadLimits, params: PreprocessParams, modality: str | None = None
                 ) -> _Prepared:
    """Read one unit and turn each case into (catalog fields, clip, thumbnail). Runs in a worker process.

    Cases are read one at a time (a series of many 2D images never holds them all), and the whole unit has
    ``limits.unit_seconds``: a unit that overruns is a failure (the cases prepared before it are kept)."""
    cases: list[NewCase] = []
    clips: list[np.ndarray] = []
    failures: list[Failure] = []
    try:
        with time_budget(limits.unit_seconds):
            for item in iter_unit(unit, limits):
                if isinstance(item, Failure):
                    failures.append(item)
                    continue
                try:
                    new, clip = _prepare_case(item, unit, params, modality)
                except Exception as exc:  # noqa: BLE001 (bad pixels fail that case, never the run)
                    failures.append(Failure(item.path, f"cannot preprocess ({type(exc).__name__}: {exc})"))
                    continue
                seen = sum(1 for c in cases if c.uid.split("#")[0] == new.uid)
                if seen:  # one unit holding several cases with one uid (e.g. two stacks of a series): keep both
                    new.uid = f"{new.uid}#{seen + 1}"
                cases.append(new)
                clips.append(clip)
    except UnitTimeout as exc:
        failures.append(Failure(_unit_path(unit), f"{exc} to read (time budget ReadLimits.unit_seconds); skipped"))
    return _Prepared(unit, cases, clips, failures)


def _prepare_case(case: Case, unit: SourceUnit, params: PreprocessParams, modality: str | None
                  ) -> tuple[NewCase, np.ndarray]:
    if modality and case.modality in UNKNOWN_MODALITIES:
        case.modality = modality
    clip = case_to_clip(case, params)  # 3 T H W
    new = NewCase.from_case(case, unit.reader, unit.key, make_thumbnail(case))
    return new, clip


def _start_pool(workers: int) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("spawn")  # safe from threads (the GUI), the same on every OS
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                               initargs=(os.getpid(),))


def _hard_deadline(limits: ReadLimits) -> float | None:
    """Seconds after which a reader process that ignored its own time budget (stuck in native code) is killed."""
    return None if not limits.unit_seconds else 2 * limits.unit_seconds + 5


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    """Kill a pool's reader processes (one of them is stuck); the pool is broken afterwards."""
    for process in list(getattr(pool, "_processes", {}).values()):
        process.kill()


def _failed(unit: SourceUnit, reason: str) -> _Prepared:
    return _Prepared(unit, [], [], [Failure(_unit_path(unit), reason)])


def _worker_init(parent_pid: int | None = None) -> None:
    """Reader processes: one thread each (the parallelism is the processes), Ctrl-C handled by the parent, and
    gone within a second of the parent's death (a killed indexer leaves no reader process behind: its pool's
    queues would keep them waiting forever)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.captureWarnings(True)  # decoders' warnings about a broken file: not on the terminal (the parent
    logging.getLogger().addHandler(logging.NullHandler())  # records the file's failure with its reason)
    if parent_pid is not None:
        threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    try:
        import cv2

        cv2.setNumThreads(1)
    except Exception:  # noqa: BLE001
        pass


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


def _absolute(unit: SourceUnit) -> SourceUnit:
    files = tuple(Path(f).absolute() for f in unit.files)
    return unit if files == unit.files else SourceUnit(unit.reader, files, unit.key)


def _unit_path(unit: SourceUnit) -> Path:
    if len(unit.files) == 1:
        return unit.files[0]
    return Path(os.path.commonpath([str(f.parent) for f in unit.files]))

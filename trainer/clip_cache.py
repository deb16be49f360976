"""Clips for training and evaluation, read once through the exact inference path and cached on disk.

Each manifest row is read with ``engine.io.scan.read_path`` and turned into a clip with
``engine.preprocess.case_to_clip`` (so the trainer sees the tensors the engine will see), quantised to uint8
(``round(clip * 255)``; grey clips keep one channel, colour three) and stored in one ``.npz`` file per
(manifest, split, preprocessing parameters, source fingerprint) under the cache folder: the ``cache_dir``
argument, else ``$M3RET_CACHE``, else ``~/.cache/m3ret/clips``. The source fingerprint covers the rows
(path, modality, dataset, label), every source file's size and modification time, and the engine's reader and
preprocessing code, so an edited file, manifest or reader builds a new cache file (old files stay; delete the
folder to reclaim space). A row that cannot be read is logged, counted and left out.

``size`` asks for a different spatial size than the parameters' (e.g. 160 px, for random-crop augmentation).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.config import DEFAULT_LIMITS, ReadLimits
from engine.io.case import Failure
from engine.preprocess import DEFAULT_PARAMS, PreprocessParams, case_to_clip
from trainer.manifest import ManifestRow, load_manifest

logger = logging.getLogger(__name__)

CACHE_ENV = "M3RET_CACHE"
FORMAT_VERSION = 1
GroupKey = tuple[int, int]  # (T, stored channels)


def default_cache_dir() -> Path:
    """``$M3RET_CACHE`` if set, else ``~/.cache/m3ret/clips``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "m3ret" / "clips"


@dataclass
class ClipSet:
    """Cached clips of some manifest rows, held in memory as uint8, handed out as float32 ``3 T H W``."""

    rows: list[ManifestRow]  # the rows that were read; clip i belongs to rows[i]
    params: PreprocessParams
    groups: dict[GroupKey, np.ndarray]  # (T, C) -> uint8 N C T H W
    where: list[tuple[GroupKey, int]]  # clip i -> (group, position in the group)
    failures: list[tuple[ManifestRow, str]] = field(default_factory=list)
    cache_file: Path | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def clips(self, i: int) -> np.ndarray:
        """Clip ``i`` as float32 ``3 T H W`` in [0, 1] (grey replicated to three channels)."""
        return _to_float(self.clip_uint8(i)[None])[0]

    def clip_uint8(self, i: int) -> np.ndarray:
        """Clip ``i`` as stored: uint8 ``C T H W``, C = 1 (grey) or 3 (colour). A view, do not modify."""
        key, pos = self.where[i]
        return self.groups[key][pos]

    def batch(self, indices: Sequence[int]) -> np.ndarray:
        """Clips of the same length T as float32 ``B 3 T H W``."""
        if not indices:
            raise ValueError("empty batch")
        lengths = {self.length(i) for i in indices}
        if len(lengths) > 1:
            raise ValueError(f"clips of different lengths {sorted(lengths)} cannot share a batch")
        out = np.empty((len(indices), 3, *self.clip_uint8(indices[0]).shape[1:]), dtype=np.float32)
        for b, i in enumerate(indices):
            out[b] = _to_float(self.clip_uint8(i)[None])[0]
        return out

    def length(self, i: int) -> int:
        """Clip length T of clip ``i`` (2 for 2D cases, 16 for volumes and videos by default)."""
        return self.where[i][0][0]

    def indices_by_length(self) -> dict[int, list[int]]:
        """Clip indices grouped by clip length T (batches must not mix lengths)."""
        out: dict[int, list[int]] = defaultdict(list)
        for i, ((t, _), _) in enumerate(self.where):
            out[t].append(i)
        return dict(out)

    @property
    def modalities(self) -> list[str]:
        """The manifest's modality of every clip (truth; readers say "OT" for NIfTI/PNG/MP4)."""
        return [r.modality for r in self.rows]

    @property
    def labels(self) -> list[str]:
        """Label keys ("dataset/label") of every clip."""
        return [r.label_key for r in self.rows]

    @property
    def datasets(self) -> list[str]:
        return [r.dataset for r in self.rows]

    def subset(self, indices: Sequence[int]) -> "ClipSet":
        """A ClipSet of some clips, in the given order (the selected clips are copied)."""
        by_key: dict[GroupKey, list[int]] = defaultdict(list)
        where = []
        for i in indices:
            key, pos = self.where[i]
            where.append((key, len(by_key[key])))
            by_key[key].append(pos)
        groups = {key: self.groups[key][positions] for key, positions in by_key.items()}
        return ClipSet([self.rows[i] for i in indices], self.params, groups, where, [], self.cache_file)


def _to_float(stored: np.ndarray) -> np.ndarray:
    """uint8 ``B C T H W`` (C = 1 or 3) -> float32 ``B 3 T H W`` in [0, 1]."""
    out = stored.astype(np.float32) * np.float32(1.0 / 255.0)
    return np.repeat(out, 3, axis=1) if out.shape[1] == 1 else out


def quantize(clip: np.ndarray) -> np.ndarray:
    """float32 ``3 T H W`` in [0, 1] -> uint8 ``C T H W`` with C = 1 when the three channels are equal."""
    q = np.rint(np.clip(clip, 0.0, 1.0) * 255.0).astype(np.uint8)
    if np.array_equal(q[0], q[1]) and np.array_equal(q[0], q[2]):
        return np.ascontiguousarray(q[:1])
    return q


# ---------------------------------------------------------------- reading one row (runs in worker processes)


class ClipReadError(ValueError):
    """The reader found no case in a row's path; the message is the reader's one-line reason."""


def read_clip(path: Path, params: PreprocessParams, limits: ReadLimits = DEFAULT_LIMITS) -> np.ndarray:
    """The row's first case through the inference path, quantised: uint8 ``C T H W``. Raises ClipReadError."""
    from engine.io.scan import read_path  # imported here: the reader module loads the format back-ends

    items = read_path(path, limits)
    try:
        first = next(iter(items), None)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
    if first is None:
        raise ClipReadError("no readable case found")
    if isinstance(first, Failure):
        raise ClipReadError(first.reason)
    return quantize(case_to_clip(first, params))


def _read_task(task: tuple[int, str, str, ReadLimits]) -> tuple[int, np.ndarray | None, str]:
    index, path, params_json, limits = task
    try:
        return index, read_clip(Path(path), PreprocessParams.from_json(params_json), limits), ""
    except ClipReadError as exc:
        return index, None, str(exc)
    except Exception as exc:  # one bad file never stops the build
        return index, None, f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


# ---------------------------------------------------------------- cache files


def source_fingerprint(rows: Iterable[ManifestRow]) -> str:
    """Hash of the rows (path, modality, dataset, label, split) and each source file's size and mtime."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(f"{row.path}|{row.modality}|{row.dataset}|{row.label}|{row.split}\n".encode())
        files = sorted(p for p in row.path.rglob("*") if p.is_file()) if row.path.is_dir() else [row.path]
        for path in files:
            try:
                stat = path.stat()
                digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
            except OSError:
                digest.update(f"{path.name}:missing;".encode())
    return digest.hexdigest()


def pipeline_fingerprint() -> str:
    """Hash of the engine code that turns files into clips (readers + preprocessing): edited code, new cache."""
    import engine.io
    import engine.preprocess

    digest = hashlib.sha256()
    files = sorted(Path(engine.io.__file__).parent.glob("*.py")) + [Path(engine.preprocess.__file__)]
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cache_path(rows: Sequence[ManifestRow], params: PreprocessParams, cache_dir: Path, name: str) -> Path:
    """The cache file for these rows, parameters and reader code: ``<name>-<size>px-<hash>.npz``."""
    key = hashlib.sha256(
        f"v{FORMAT_VERSION}|{params.to_json()}|{source_fingerprint(rows)}|{pipeline_fingerprint()}".encode()
    ).hexdigest()[:16]
    return cache_dir / f"{name}-{params.size}px-{key}.npz"


def _save(path: Path, clip_set: ClipSet, row_indices: list[int], failed: list[tuple[int, str]]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for (t, c), array in clip_set.groups.items():
        arrays[f"clips_t{t}_c{c}"] = array
    arrays["where"] = np.array([[t, c, pos] for (t, c), pos in clip_set.where], dtype=np.int64).reshape(-1, 3)
    arrays["row_index"] = np.array(row_indices, dtype=np.int64)
    meta = {"params": clip_set.params.to_json(), "failed": failed, "version": FORMAT_VERSION}
    arrays["meta"] = np.array(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the cache is shareable
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: Path, rows: Sequence[ManifestRow]) -> ClipSet:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        groups: dict[GroupKey, np.ndarray] = {}
        for name in data.files:
            if name.startswith("clips_t"):
                t, c = (int(part[1:]) for part in name[len("clips_") :].split("_"))
                groups[(t, c)] = data[name]
        where = [((int(t), int(c)), int(pos)) for t, c, pos in data["where"]]
        row_index = [int(i) for i in data["row_index"]]
    failures = [(rows[i], reason) for i, reason in meta["failed"]]
    params = PreprocessParams.from_json(meta["params"])
    return ClipSet([rows[i] for i in row_index], params, groups, where, failures, path)


# ---------------------------------------------------------------- building


def build_clip_set(
    rows: Sequence[ManifestRow],
    params: PreprocessParams = DEFAULT_PARAMS,
    *,
    size: int | None = None,
    cache_dir: str | Path | None = None,
    name: str = "clips",
    workers: int = 2,
    limits: ReadLimits = DEFAULT_LIMITS,
    use_cache: bool = True,
) -> ClipSet:
    """Clips of ``rows`` from the cache file, building it first if needed (``workers`` processes; 0 = inline).

    ``size`` overrides ``params.size`` (e.g. 160 to random-crop 128 px views); ``name`` prefixes the cache file.
    """
    if size is not None and size != params.size:
        params = replace(params, size=size)
    rows = list(rows)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = cache_path(rows, params, folder, name)
    if use_cache and path.is_file():
        try:
            clip_set = _load(path, rows)
            logger.info("%s: %d clips from cache (%d failed rows)", path, len(clip_set), len(clip_set.failures))
            return clip_set
        except Exception as exc:  # a damaged cache file is rebuilt, not fatal
            logger.warning("%s: unreadable cache file, rebuilding (%s)", path, exc)

    results: dict[int, np.ndarray] = {}
    failed: list[tuple[int, str]] = []
    tasks = [(i, str(row.path), params.to_json(), limits) for i, row in enumerate(rows)]
    bar = tqdm(total=len(tasks), desc=f"reading {name}", unit="case", mininterval=2.0)
    try:
        for index, clip, reason in _run_tasks(tasks, workers):
            bar.update(1)
            if clip is None:
                logger.warning("%s: skipped, %s", rows[index].path, reason)
                failed.append((index, reason))
            else:
                results[index] = clip
    finally:
        bar.close()
    failed.sort()
    clip_set, row_indices = _assemble(rows, params, results, failed)
    if failed:
        logger.warning("%s: %d of %d rows could not be read", name, len(failed), len(rows))
    if use_cache:
        _save(path, clip_set, row_indices, failed)
        clip_set.cache_file = path
        logger.info("%s: wrote %d clips", path, len(clip_set))
    return clip_set


def _run_tasks(tasks: list, workers: int) -> Iterable[tuple[int, np.ndarray | None, str]]:
    if workers <= 0 or len(tasks) < 2:
        yield from map(_read_task, tasks)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a parent that may hold torch threads
    with context.Pool(workers, initializer=_init_worker) as pool:
        yield from pool.imap_unordered(_read_task, tasks, chunksize=4)


def _assemble(
    rows: list[ManifestRow], params: PreprocessParams, results: dict[int, np.ndarray], failed: list[tuple[int, str]]
) -> tuple[ClipSet, list[int]]:
    """Stack clips per (T, C) group, in row order."""
    row_indices = sorted(results)
    by_key: dict[GroupKey, list[int]] = defaultdict(list)
    where: list[tuple[GroupKey, int]] = []
    for i in row_indices:
        c, t = results[i].shape[:2]
        where.append(((t, c), len(by_key[(t, c)])))
        by_key[(t, c)].append(i)
    groups = {}
    for key, members in by_key.items():
        groups[key] = np.stack([results.pop(i) for i in members])  # N C T H W
    failures = [(rows[i], reason) for i, reason in failed]
    return ClipSet([rows[i] for i in row_indices], params, groups, where, failures), row_indices


def load_clip_set(
    manifest: str | Path,
    split: str | None = None,
    params: PreprocessParams = DEFAULT_PARAMS,
    *,
    size: int | None = None,
    exclude_modalities: Iterable[str] = (),
    include_modalities: Iterable[str] | None = None,
    cache_dir: str | Path | None = None,
    workers: int = 2,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> ClipSet:
    """Clips of a manifest's split (None = all splits), filtered by modality; cached (see module docstring)."""
    rows = load_manifest(manifest, split, exclude_modalities, include_modalities)
    return build_clip_set(rows, params, size=size, cache_dir=cache_dir, name=cache_name(manifest, split),
                          workers=workers, limits=limits)


def cache_name(manifest: str | Path, split: str | None) -> str:
    """Readable cache file prefix: ``<manifest folder>-<manifest stem>-<split>`` (the hash makes it unique)."""
    manifest = Path(manifest).resolve()
    return f"{manifest.parent.name}-{manifest.stem}-{split or 'all'}"

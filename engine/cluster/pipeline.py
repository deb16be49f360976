"""The Ray Data pipeline: shards in, finished ``ShardResult``s out (streamed; the driver never holds the archive).

::

    from_items(one row per shard)                             driver -> object store
      .flat_map(read_shard_rows)    CPU tasks                 read + preprocess + thumbnail, one row per case
                                                              (clip bytes) + one marker row per unit
      .map_batches(EmbedActor)      actor pool                ONNX Runtime session loaded once per actor
                                                              (CUDA provider where the worker has a GPU)
      .iter_batches()               driver                    rows grouped back into shards (ShardAssembler)

Rows carry plain columns (ints, strings, bytes), not pickled objects: a case is its ``NewCase`` as JSON, its
thumbnail PNG bytes, and its clip (``.npy`` bytes) or, after the actor, its float16 vector bytes. The reading
itself is the local indexer's (``engine.indexer.prepare_unit``), so both paths make the same cases and clips.

Ray retries a task whose worker dies and restarts a dead actor (Ray Data's defaults: tasks 3 retries, actors
``max_restarts=-1`` with their calls retried), so a killed worker costs time, not cases; what a shard's rows
are is decided by the shard, never by which worker made them, so a retried task cannot duplicate a case.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray

from engine.catalog import NewCase
from engine.cluster.shards import Shard, ShardResult, case_fields, case_from_fields
from engine.config import ReadLimits
from engine.encoder import Encoder
from engine.indexer import prepare_unit
from engine.io.case import Failure
from engine.io.scan import SourceUnit
from engine.preprocess import PreprocessParams

log = logging.getLogger(__name__)

EMBED_BATCH_ROWS = 16  # rows per actor call (marker rows included); the encoder batches by clip length itself


@dataclass(frozen=True)
class PipelineSettings:
    """How the pipeline uses the cluster."""

    model_path: Path
    model_id: str
    params: PreprocessParams
    limits: ReadLimits
    modality: str | None = None
    actors: int = 1  # embedding actors (each loads the model once)
    cpus_per_actor: float = 1.0  # also the encoder's thread count
    gpus_per_actor: float = 0.0
    cpus_per_reader: float = 1.0


def shard_rows(shards: Sequence[Shard]) -> list[dict[str, Any]]:
    """The pipeline's input: one row per shard, its units as JSON."""
    return [
        {"shard": s.number,
         "units": json.dumps([[u.reader, [str(f) for f in u.files], u.key] for u in s.units])}
        for s in shards
    ]


def read_shard_rows(row: dict[str, Any], limits: ReadLimits, params: PreprocessParams, modality: str | None
                    ) -> list[dict[str, Any]]:
    """A Ray task: read and preprocess every unit of one shard -> case rows + one marker row per unit."""
    _single_threaded_decoders()
    out: list[dict[str, Any]] = []
    for reader, files, key in json.loads(row["units"]):
        unit = SourceUnit(reader, tuple(Path(f) for f in files), key)
        prepared = prepare_unit(unit, limits, params, modality)
        for case, clip in zip(prepared.cases, prepared.clips):
            out.append(_row(row["shard"], key, case=json.dumps(case_fields(case)), thumbnail=case.thumbnail or b"",
                            payload=_clip_bytes(clip)))
        failures = json.dumps([[str(f.path), f.reason] for f in prepared.failures])
        out.append(_row(row["shard"], key, failures=failures, n_cases=len(prepared.cases)))
    return out


class EmbedActor:
    """An actor of the embedding pool: one ONNX Runtime session for its lifetime; clips in, f16 vectors out."""

    def __init__(self, model_path: str, model_id: str, threads: int) -> None:
        self.encoder = Encoder(Path(model_path), threads=max(1, threads))
        if self.encoder.model_id != model_id:
            raise RuntimeError(f"{model_path}: model {self.encoder.model_id!r} on this worker, "
                               f"{model_id!r} expected (every node must see the same model file)")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        payload = batch["payload"]
        with_clip = [i for i in range(len(payload)) if len(payload[i])]
        vectors = self.encoder.embed_clips([_clip_from(payload[i]) for i in with_clip])  # n D float32
        out = np.empty(len(payload), dtype=object)
        out[:] = [b""] * len(payload)
        for row, vector in zip(with_clip, vectors):
            out[row] = np.asarray(vector, dtype="<f2").tobytes()
        return {**{k: v for k, v in batch.items() if k != "payload"}, "payload": out}


@dataclass
class _Partial:
    units_left: int
    cases_expected: int = 0
    unit_keys: list[str] = field(default_factory=list)
    cases: list[NewCase] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


class ShardAssembler:
    """Collects the pipeline's rows per shard; a shard is finished when every unit's marker and every case
    the markers announce have arrived (rows come in any order)."""

    def __init__(self, shards: Sequence[Shard]) -> None:
        self._partial = {s.number: _Partial(units_left=len(s.units)) for s in shards}

    def add(self, row: dict[str, Any]) -> tuple[int, ShardResult] | None:
        """Take one row; returns ``(shard number, result)`` when that row finishes its shard."""
        number = int(row["shard"])
        part = self._partial[number]
        if row["case"]:
            case = case_from_fields(json.loads(row["case"]), bytes(row["thumbnail"]) or None)
            part.cases.append(case)
            part.vectors.append(np.frombuffer(bytes(row["payload"]), dtype="<f2"))
        else:
            part.units_left -= 1
            part.unit_keys.append(str(row["unit"]))
            part.cases_expected += int(row["n_cases"])
            part.failures += [Failure(Path(p), reason) for p, reason in json.loads(row["failures"])]
        if part.units_left == 0 and len(part.cases) == part.cases_expected:
            del self._partial[number]
            order = np.argsort([f"{c.unit_key}\0{c.uid}" for c in part.cases], kind="stable")
            cases = [part.cases[i] for i in order]
            dim = part.vectors[0].shape[0] if part.vectors else 0
            vectors = np.stack([part.vectors[i] for i in order]) if len(order) else np.zeros((0, dim), np.float16)
            return number, ShardResult(sorted(part.unit_keys), cases, vectors, part.failures)
        return None

    @property
    def unfinished(self) -> list[int]:
        return sorted(self._partial)


def run_pipeline(shards: Sequence[Shard], settings: PipelineSettings) -> Iterator[tuple[int, ShardResult]]:
    """Stream ``(shard number, result)`` for every shard as it finishes (Ray must be initialised)."""
    if not shards:
        return
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False  # the caller shows shards done / total
    context.print_on_execution_start = False
    dataset = ray.data.from_items(shard_rows(shards), override_num_blocks=len(shards))
    dataset = dataset.flat_map(
        read_shard_rows, fn_kwargs=dict(limits=settings.limits, params=settings.params, modality=settings.modality),
        num_cpus=settings.cpus_per_reader,
    )
    dataset = dataset.map_batches(
        EmbedActor,
        fn_constructor_kwargs=dict(model_path=str(settings.model_path), model_id=settings.model_id,
                                   threads=max(1, int(settings.cpus_per_actor))),
        batch_size=EMBED_BATCH_ROWS, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=max(1, settings.actors)),
        num_cpus=settings.cpus_per_actor, num_gpus=settings.gpus_per_actor or None,
    )
    assembler = ShardAssembler(shards)
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        columns = list(batch)
        for i in range(len(batch["shard"])):
            finished = assembler.add({name: batch[name][i] for name in columns})
            if finished is not None:
                yield finished
    if assembler.unfinished:  # cannot happen unless Ray dropped rows; the shards are redone next run
        log.error("pipeline ended with %d unfinished shard(s): %s", len(assembler.unfinished), assembler.unfinished)


# ---- row helpers -----------------------------------------------------------------------------------------------


def _row(shard: int, unit_key: str, *, case: str = "", thumbnail: bytes = b"", payload: bytes = b"",
         failures: str = "[]", n_cases: int = -1) -> dict[str, Any]:
    return {"shard": shard, "unit": unit_key, "case": case, "thumbnail": thumbnail, "payload": payload,
            "failures": failures, "n_cases": n_cases}


def _clip_bytes(clip: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(clip, dtype=np.float32), allow_pickle=False)  # 3 T H W
    return buffer.getvalue()


def _clip_from(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(bytes(data)), allow_pickle=False)


def _single_threaded_decoders() -> None:
    """Reader tasks use one core each (the parallelism is the tasks), like the local reader processes."""
    try:
        import cv2

        cv2.setNumThreads(1)
    except Exception:  # noqa: BLE001
        pass

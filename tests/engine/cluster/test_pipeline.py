"""engine.cluster.pipeline without a cluster: a shard's rows, read by the local indexer's code, reassembled in any
order; the embedding actor's vectors are the encoder's."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason="ray not installed (cluster extra)")

from engine.cluster.pipeline import EmbedActor, ShardAssembler, read_shard_rows, shard_rows  # noqa: E402
from engine.cluster.shards import plan_shards  # noqa: E402
from engine.config import DEFAULT_LIMITS  # noqa: E402
from engine.encoder import Encoder  # noqa: E402
from engine.io.scan import discover  # noqa: E402
from tests.engine.conftest import write_phantoms  # noqa: E402


def test_rows_of_a_shard_reassemble_in_any_order_with_the_encoders_vectors(tmp_path: Path, tiny_model: Path) -> None:
    write_phantoms(tmp_path / "files", 3)
    (tmp_path / "files" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    units = [u for u in discover(tmp_path / "files") if not hasattr(u, "reason")]
    encoder = Encoder(tiny_model)
    (shard,) = plan_shards(units, {u.key for u in units}, encoder.model_id, 10)
    (row,) = shard_rows([shard])
    rows = read_shard_rows(row, DEFAULT_LIMITS, encoder.params, "XR")
    assert len(rows) == 6 + 7  # 6 cases + one marker per unit (the broken file's marker carries its failure)

    actor = EmbedActor(str(tiny_model), encoder.model_id, threads=1)
    columns = {name: np.array([r[name] for r in rows], dtype=object) for name in rows[0]}
    embedded = actor(columns)
    out = [{name: embedded[name][i] for name in embedded} for i in range(len(rows))]
    random.Random(0).shuffle(out)

    assembler = ShardAssembler([shard])
    finished = [r for r in (assembler.add(row) for row in out) if r is not None]
    assert len(finished) == 1 and not assembler.unfinished
    number, result = finished[0]
    assert number == shard.number and len(result.cases) == 6 and len(result.unit_keys) == 7
    assert [f.path.name for f in result.failures] == ["broken.png"]
    assert all(c.modality == "XR" and c.thumbnail for c in result.cases)
    clips = [np.load(io.BytesIO(r["payload"])) for r in rows if r["case"]]
    by_uid = {json.loads(r["case"])["uid"]: i for i, r in enumerate(x for x in rows if x["case"])}
    expected = encoder.embed_clips(clips)  # the same clips embedded directly
    for case, vector in zip(result.cases, result.vectors):
        assert np.allclose(vector.astype(np.float32), expected[by_uid[case.uid]], atol=1e-3)

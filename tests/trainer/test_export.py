"""ONNX export: the engine's contract (names, dynamic B and T, metadata) and parity with torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from engine import model_format as mf
from engine.preprocess import PreprocessParams
from trainer.config import load_config
from trainer.export import (
    INT8_MIN_COSINE,
    PARITY_MIN_COSINE,
    cosines,
    export_checkpoint,
    onnx_embed,
    read_metadata,
    sample_clips,
)
from trainer.synthetic import SyntheticClips
from trainer.train import PretrainModel, load_checkpoint, pretrain


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    pretrain(load_config("smoke", ["train.steps=2"]), folder / "run")
    checkpoint = folder / "run" / "checkpoints" / "last.pt"
    card = {"recipe": "smoke", "steps": 2}
    report = export_checkpoint(checkpoint, folder / "model.onnx", card=card)
    model = PretrainModel(load_checkpoint(checkpoint)["config"])
    model.load_state_dict(load_checkpoint(checkpoint)["model"])
    return folder / "model.onnx", model.export_encoder().eval(), report, card


def test_graph_has_contract_names_and_dynamic_batch_and_frames(exported):
    path, _, _, _ = exported
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == [mf.INPUT_NAME]
    assert [o.name for o in graph.output] == [mf.OUTPUT_NAME]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[2].dim_param  # B and T symbolic
    assert [d.dim_value for d in dims[1:2] + dims[3:]] == [3, 32, 32]


def test_metadata_present(exported):
    path, encoder, report, card = exported
    meta = read_metadata(path)
    assert meta[mf.META_MODEL_ID] == report["model_id"] and meta[mf.META_MODEL_ID].startswith("m3ret-vit-nano-")
    assert meta[mf.META_EMBED_DIM] == str(encoder.embed_dim)
    assert meta[mf.META_ARCH] == "vit_nano"
    assert PreprocessParams.from_json(meta[mf.META_PREPROCESS]).size == 32
    assert json.loads(meta[mf.META_CARD]) == card


@pytest.mark.parametrize("frames", [2, 16])
def test_onnx_matches_torch(exported, frames):
    path, encoder, report, _ = exported
    clips = SyntheticClips(8, 32)
    clip = clips.batch([i for i in range(8) if clips.length(i) == frames])
    with torch.no_grad():
        ref = encoder(torch.from_numpy(clip)).numpy()
    out = onnx_embed(path, clip)
    assert out.shape == ref.shape
    assert cosines(out, ref).min() >= PARITY_MIN_COSINE
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert report["parity_cosine"][frames] >= PARITY_MIN_COSINE


@pytest.mark.parametrize(("batch", "frames"), [(1, 2), (5, 16), (2, 8)])
def test_other_batch_sizes_and_clip_lengths_run(exported, batch, frames):
    path, encoder, _, _ = exported
    clip = sample_clips(frames, 32, batch=batch)
    with torch.no_grad():
        ref = encoder(torch.from_numpy(clip)).numpy()
    assert cosines(onnx_embed(path, clip), ref).min() >= PARITY_MIN_COSINE


def test_int8_copy_kept_only_when_close(exported):
    path, _, report, _ = exported
    int8 = path.with_name("model.int8.onnx")
    if report["int8"] is None:
        assert not int8.exists() and min(report["int8_cosine"].values()) < INT8_MIN_COSINE
    else:
        assert int8.is_file() and min(report["int8_cosine"].values()) >= INT8_MIN_COSINE
        assert read_metadata(int8)[mf.META_MODEL_ID] == report["model_id"]
        clip = sample_clips(16, 32, seed=5)
        assert cosines(onnx_embed(int8, clip), onnx_embed(path, clip)).min() >= INT8_MIN_COSINE - 1e-3


def test_cli_export(exported, tmp_path, capsys):
    from trainer.cli import main

    checkpoint = Path(exported[0]).parent / "run" / "checkpoints" / "last.pt"
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"recipe": "cli"}))
    out = tmp_path / "cli.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--card", str(card), "--no-int8"]) == 0
    assert json.loads(read_metadata(out)[mf.META_CARD]) == {"recipe": "cli"}
    assert json.loads(capsys.readouterr().out)["parity_cosine"]


def test_bundled_default_model_follows_the_contract():
    path = Path(__file__).resolve().parents[2] / "resources" / "models" / mf.DEFAULT_MODEL_FILENAME
    if not path.is_file():
        pytest.skip(f"{path.name} not built yet")
    meta = read_metadata(path)
    params = PreprocessParams.from_json(meta[mf.META_PREPROCESS])
    card = json.loads(meta[mf.META_CARD])
    assert card["model_id"] == meta[mf.META_MODEL_ID] and meta[mf.META_ARCH] == card["arch"]
    assert path.stat().st_size < 30e6
    for frames in (params.frames_2d, params.frames_3d):
        out = onnx_embed(path, sample_clips(frames, params.size, batch=2))
        assert out.shape == (2, int(meta[mf.META_EMBED_DIM]))
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)


def test_exported_file_names_no_paths_of_the_build_machine(exported):
    path, _, _, _ = exported
    repo = str(Path(__file__).resolve().parents[2])
    assert repo.encode() not in Path(path).read_bytes()  # the exporter's per-node stack traces are stripped

"""engine.encoder: metadata-driven ONNX runtime, batching by clip length, providers, bundled model path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine import encoder as encoder_module
from engine.encoder import CPU_PROVIDER, Encoder, ModelError, choose_providers, default_model_path
from engine.io.case import Case
from engine.preprocess import PreprocessParams, case_to_clip
from tests.engine.conftest import TINY_DIM, build_pooling_model, phantom_image


def _clip(t: int, seed: int, size: int = 128) -> np.ndarray:
    return np.random.default_rng(seed).random((3, t, size, size), dtype=np.float32)  # 3 T H W


def test_metadata_gives_id_dim_and_preprocessing(tiny_model: Path) -> None:
    enc = Encoder(tiny_model, threads=1)
    assert enc.model_id == "test-pooling-32"
    assert enc.embed_dim == TINY_DIM
    assert enc.params == PreprocessParams()
    assert enc.providers[-1] == CPU_PROVIDER


def test_preprocessing_params_come_from_the_model(tmp_path: Path) -> None:
    params = PreprocessParams(size=64, frames_2d=2, frames_3d=8)
    enc = Encoder(build_pooling_model(tmp_path / "m64.onnx", params=params), threads=1)
    assert enc.params == params
    case = Case(pixels=phantom_image("disc", 1), kind="image2d", modality="XR", source_files=[], fingerprint="x")
    vec = enc.embed_cases([case])
    assert vec.shape == (1, TINY_DIM)


def test_mixed_clip_lengths_keep_input_order(tiny_model: Path) -> None:
    enc = Encoder(tiny_model, threads=1, batch_size=2)
    clips = [_clip(2, 0), _clip(16, 1), _clip(2, 2), _clip(16, 3), _clip(2, 4)]
    together = enc.embed_clips(clips)
    alone = np.concatenate([enc.embed_clips([c]) for c in clips])
    assert together.shape == (5, TINY_DIM) and together.dtype == np.float32
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(together[0], together[2])  # different inputs, different vectors


def test_embed_cases_equals_embedding_the_preprocessed_clip(tiny_model: Path) -> None:
    enc = Encoder(tiny_model, threads=1)
    case = Case(pixels=phantom_image("frame", 3), kind="image2d", modality="XR", source_files=[], fingerprint="x")
    np.testing.assert_allclose(enc.embed_cases([case]), enc.embed_clips([case_to_clip(case, enc.params)]), atol=1e-6)


def test_missing_or_foreign_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        Encoder(tmp_path / "absent.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="cannot load"):
        Encoder(junk)


def test_model_without_metadata_is_refused(tmp_path: Path) -> None:
    import onnx

    path = build_pooling_model(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="metadata"):
        Encoder(path)


def test_providers_fall_back_to_cpu() -> None:
    assert choose_providers([]) == [CPU_PROVIDER]
    assert choose_providers(["NoSuchExecutionProvider"]) == [CPU_PROVIDER]
    assert choose_providers()[-1] == CPU_PROVIDER


def test_session_is_built_once_per_process(tiny_model: Path) -> None:
    assert Encoder.shared(tiny_model, threads=1) is Encoder.shared(tiny_model, threads=1)


def test_session_does_not_spin(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, str] = {}
    original = encoder_module.ort.SessionOptions.add_session_config_entry

    def record(self, key: str, value: str) -> None:  # noqa: ANN001
        seen[key] = value
        original(self, key, value)

    monkeypatch.setattr(encoder_module.ort.SessionOptions, "add_session_config_entry", record)
    Encoder(tiny_model, threads=2)
    assert seen["session.intra_op.allow_spinning"] == "0"


def test_default_model_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("M3RET_MODEL", raising=False)
    assert default_model_path().parts[-3:] == ("resources", "models", "m3ret-default.onnx")
    monkeypatch.setenv("M3RET_MODEL", str(tmp_path / "x.onnx"))
    assert default_model_path() == tmp_path / "x.onnx"


def test_trainer_export_runs_in_the_engine(trainer_model: Path) -> None:
    enc = Encoder(trainer_model, threads=1)
    assert enc.model_id == "test-vit-random-init" and enc.embed_dim == 64
    vectors = enc.embed_clips([_clip(2, 0), _clip(16, 1)])
    assert vectors.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_bundled_default_model_follows_the_contract(default_model: Path) -> None:
    enc = Encoder(default_model)
    assert enc.model_id and enc.embed_dim > 0
    clips = [_clip(enc.params.frames_2d, 0, enc.params.size), _clip(enc.params.frames_3d, 1, enc.params.size)]
    vectors = enc.embed_clips(clips)  # the size its metadata declares, 2D and 3D
    assert vectors.shape == (2, enc.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)

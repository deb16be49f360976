"""trainer.baselines: every embedder maps clips of any length T to unit vectors, with the properties it claims."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from engine import model_format
from engine.preprocess import PreprocessParams
from trainer.baselines import (
    BASELINES,
    EfficientNetLite0Embedder,
    Embedder,
    OnnxEmbedder,
    RandomViTEmbedder,
    RawPixelEmbedder,
    make_baseline,
)

HAS_MODEL = importlib.util.find_spec("trainer.model") is not None


def _clips(batch: int, frames: int, size: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((batch, 3, frames, size, size), dtype=np.float32)  # B 3 T H W


def _unit_rows(vectors: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5))


def test_raw_pixels_shape_and_invariances() -> None:
    embedder = RawPixelEmbedder()
    clips = _clips(3, 16)
    vectors = embedder.embed(clips)
    assert vectors.shape == (3, 3 * 4 * 16 * 16) and vectors.dtype == np.float32 and _unit_rows(vectors)
    # cosine = pixel correlation: an affine change of intensity changes nothing
    assert np.allclose(embedder.embed(0.5 * clips + 0.2), vectors, atol=1e-5)
    # a still image is the same vector whether repeated over 2 frames (2D case) or 16
    still = clips[:, :, :1]
    assert np.allclose(embedder.embed(np.repeat(still, 2, axis=2)), embedder.embed(np.repeat(still, 16, axis=2)),
                       atol=1e-5)
    # time order is kept: reversing the frames of a video changes the vector
    assert not np.allclose(embedder.embed(clips[:, :, ::-1]), vectors, atol=1e-3)
    with pytest.raises(ValueError, match="not a multiple of the grid"):
        embedder.embed(_clips(1, 2, size=100))


@pytest.mark.skipif(not HAS_MODEL, reason="trainer.model not written yet")
def test_random_vit_is_seeded_and_takes_both_lengths() -> None:
    first, second = RandomViTEmbedder("vit_nano", seed=3), RandomViTEmbedder("vit_nano", seed=3)
    clips2, clips16 = _clips(2, 2, seed=1), _clips(1, 16, seed=2)
    a = first.embed(clips2)
    assert a.shape == (2, 128) and _unit_rows(a)
    assert np.allclose(a, second.embed(clips2), atol=1e-5)
    assert first.embed(clips16).shape == (1, 128)
    assert not np.allclose(RandomViTEmbedder("vit_nano", seed=4).embed(clips2), a, atol=1e-3)


def test_efficientnet_lite0_features() -> None:
    embedder = EfficientNetLite0Embedder()
    ramp = np.linspace(0, 1, 128, dtype=np.float32)
    stripes = np.broadcast_to(ramp[None, None, None, :, None], (1, 3, 2, 128, 128))  # horizontal ramp
    checker = np.indices((128, 128)).sum(axis=0) // 16 % 2
    board = np.broadcast_to(checker.astype(np.float32), (1, 3, 2, 128, 128))
    clips = np.concatenate([stripes, board])
    vectors = embedder.embed(clips)
    assert vectors.shape == (2, 1280) and _unit_rows(vectors)
    assert float(vectors[0] @ vectors[1]) < 0.9  # different images, different features
    # a still over 2 frames (one frame computed) equals the same still over 4 frames (all computed, averaged)
    assert np.allclose(embedder.embed(np.repeat(clips[:, :, :1], 4, axis=2)), vectors, atol=1e-4)


def _mean_colour_model(path: Path, params: PreprocessParams) -> Path:
    """A contract-following ONNX model: embedding = L2-normalised mean of each channel (B 3)."""
    axes = helper.make_tensor("axes", TensorProto.INT64, [3], [2, 3, 4])
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["clip", "axes"], ["mean"], keepdims=0),
         helper.make_node("LpNormalization", ["mean"], ["embedding"], axis=1, p=2)],
        "mean_colour",
        [helper.make_tensor_value_info("clip", TensorProto.FLOAT, ["B", 3, "T", "H", "W"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["B", 3])],
        initializer=[axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    meta = {model_format.META_MODEL_ID: "test-mean-colour", model_format.META_EMBED_DIM: "3",
            model_format.META_PREPROCESS: params.to_json(), model_format.META_ARCH: "vit_nano"}
    helper.set_model_props(model, meta)
    onnx.save(model, path)
    return path


def test_onnx_embedder_follows_the_model_contract(tmp_path: Path) -> None:
    params = PreprocessParams(size=64)
    embedder = OnnxEmbedder(_mean_colour_model(tmp_path / "m.onnx", params), threads=1)
    assert embedder.params == params and embedder.model_id == "test-mean-colour"
    clips = _clips(3, 16, size=64)
    clips[1, 0] *= 0.2  # less red
    expected = clips.mean(axis=(2, 3, 4))
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(embedder.embed(clips), expected, atol=1e-5)
    assert embedder.embed(_clips(2, 2, size=64)).shape == (2, 3)


def test_make_baseline_by_name() -> None:
    assert isinstance(make_baseline("raw_pixels"), Embedder)
    assert set(BASELINES) == {"raw_pixels", "random_vit", "efficientnet_lite0"}
    with pytest.raises(ValueError, match="unknown baseline 'sift'"):
        make_baseline("sift")

"""Engine test fixtures: a small ONNX model that follows ``engine.model_format``, libraries, synthetic phantoms.

The model is the trainer's random-init export when ``trainer.export`` can make one; otherwise a tiny hand-built
ONNX graph (mean over T, 16x16 average pooling, a fixed random projection, L2 norm) with the same inputs, outputs
and metadata. The hand-built one keeps image similarity (similar pictures -> near vectors), which the mechanics
tests rely on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.model_format import INPUT_NAME, META_ARCH, META_EMBED_DIM, META_MODEL_ID, META_PREPROCESS, OUTPUT_NAME
from engine.preprocess import DEFAULT_PARAMS, PreprocessParams

TINY_DIM = 32


def build_pooling_model(path: Path, dim: int = TINY_DIM, model_id: str = "test-pooling-32", seed: int = 0,
                        params: PreprocessParams = DEFAULT_PARAMS) -> Path:
    """Write a tiny deterministic ONNX encoder: clip B 3 T S S -> embedding B D (L2-normalised)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    pool = params.size // 8
    n_features = 3 * 8 * 8
    rng = np.random.default_rng(seed)
    weights = (rng.standard_normal((n_features, dim)) / np.sqrt(n_features)).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", [INPUT_NAME], ["mean_t"], axes=[2], keepdims=0),  # B 3 S S
        helper.make_node("AveragePool", ["mean_t"], ["pooled"], kernel_shape=[pool, pool], strides=[pool, pool]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),  # B 192
        helper.make_node("Sub", ["flat", "half"], ["centred"]),
        helper.make_node("MatMul", ["centred", "w"], ["proj"]),  # B D
        helper.make_node("LpNormalization", ["proj"], [OUTPUT_NAME], axis=1, p=2),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_pooling_encoder",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["B", 3, "T", params.size, params.size])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["B", dim])],
        initializer=[numpy_helper.from_array(weights, "w"), numpy_helper.from_array(np.float32(0.25), "half")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {META_MODEL_ID: model_id, META_EMBED_DIM: str(dim), META_PREPROCESS: params.to_json(),
                       META_ARCH: "test_pooling"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model following the ONNX contract (deterministic pooling graph)."""
    return build_pooling_model(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second model with another id (model-mismatch tests)."""
    return build_pooling_model(tmp_path_factory.mktemp("models_b") / "other.onnx", model_id="test-pooling-b", seed=1)


@pytest.fixture(scope="session")
def trainer_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trainer's ONNX export of a small random-init ViT (skipped where torch or the trainer is missing)."""
    pytest.importorskip("torch", reason="torch not installed (train extra)")
    export = pytest.importorskip("trainer.export", reason="trainer.export not available")
    import torch

    from trainer.model import VisionTransformer

    torch.manual_seed(0)
    encoder = VisionTransformer(embed_dim=64, depth=2, num_heads=2)
    path = tmp_path_factory.mktemp("trainer_model") / "random.onnx"
    return export.export_onnx(encoder, path, arch="vit_test", model_id="test-vit-random-init")


@pytest.fixture(scope="session")
def default_model() -> Path:
    """The bundled default model (skipped with a reason where it has not been exported yet)."""
    from engine.encoder import default_model_path

    path = default_model_path()
    if not path.is_file():
        pytest.skip(f"bundled default model absent ({path.name}): the trainer exports it")
    return path

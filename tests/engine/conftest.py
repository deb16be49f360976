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


# ---- synthetic phantoms: two image families whose nearest neighbours are known -----------------------------------

PHANTOM_FAMILIES = ("disc", "frame")


def phantom_image(family: str, seed: int, size: int = 96) -> np.ndarray:
    """A grey uint8 picture: a bright centred disc, or a bright frame around a dark centre, with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    centre = size / 2 + rng.uniform(-4, 4, size=2)
    if family == "disc":
        radius = rng.uniform(0.25, 0.35) * size
        image = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2).astype(np.float32)
    else:
        border = int(rng.uniform(0.12, 0.2) * size)
        image = np.ones((size, size), np.float32)
        image[border:-border, border:-border] = 0.0
    image = 40 + 160 * image + rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_phantoms(folder: Path, n_each: int, first_seed: int = 0) -> dict[Path, str]:
    """Write ``n_each`` PNGs per family under ``folder/<family>/``; returns {path: family}."""
    import cv2

    out: dict[Path, str] = {}
    for family in PHANTOM_FAMILIES:
        (folder / family).mkdir(parents=True, exist_ok=True)
        for i in range(n_each):
            path = folder / family / f"{family}_{first_seed + i:03d}.png"
            cv2.imwrite(str(path), phantom_image(family, first_seed + i + (1000 if family == "frame" else 0)))
            out[path] = family
    return out


# ---- a real subset of the shared data ---------------------------------------------------------------------------

SUBSET_PER_MODALITY = {"xray": 12, "mri": 12, "ct": 10, "ultrasound": 6}  # 40 test-split cases
MANIFEST_MODALITY_CODES = {"xray": "XR", "mri": "MR", "ct": "CT", "ultrasound": "US"}


def shared_subset(shared_data: Path, per_modality: dict[str, int] = SUBSET_PER_MODALITY, split: str = "test",
                  seed: int = 0) -> list[dict[str, str]]:
    """Manifest rows: a seeded sample of the split, per modality, labels mixed; at most 4 videos (slow)."""
    import csv
    import random

    rows = [r for r in csv.DictReader((shared_data / "manifest.csv").open()) if r["split"] == split]
    rng = random.Random(seed)
    chosen: list[dict[str, str]] = []
    for modality, n in per_modality.items():
        pool = [r for r in rows if r["modality"] == modality]
        videos = [r for r in pool if r["path"].endswith(".mp4")]
        stills = [r for r in pool if not r["path"].endswith(".mp4")]
        n_videos = min(len(videos), 4, n // 2) if videos else 0
        chosen += rng.sample(videos, n_videos) + rng.sample(stills, min(len(stills), n - n_videos))
    return chosen


def copy_subset(shared_data: Path, rows: list[dict[str, str]], dest: Path) -> dict[str, list[Path]]:
    """Copy the rows' files to ``dest`` (same relative layout); returns {manifest modality: [copied paths]}."""
    import shutil

    out: dict[str, list[Path]] = {}
    for row in rows:
        source = shared_data / row["path"]
        target = dest / row["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        out.setdefault(row["modality"], []).append(target)
    return out


@pytest.fixture(scope="session")
def subset_library(shared_data: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
                   ) -> tuple[Path, list[dict[str, str]], Path]:
    """A library of 40 real test-split cases (tiny model), modalities set from the manifest.

    Returns (library folder, manifest rows, folder holding the copied files). Tests must not modify it.
    """
    from engine.indexer import index_paths
    from engine.library import Library

    rows = shared_subset(shared_data)
    files_dir = tmp_path_factory.mktemp("subset_files")
    by_modality = copy_subset(shared_data, rows, files_dir)
    library_dir = tmp_path_factory.mktemp("subset_library") / "lib"
    with Library.open(library_dir, model_path=tiny_model) as library:
        for modality, paths in by_modality.items():
            report = index_paths(library, paths, workers=0, modality=MANIFEST_MODALITY_CODES[modality])
            assert report.n_failed == 0, report.failures
    return library_dir, rows, files_dir

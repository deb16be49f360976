"""trainer.export_frames: the frame encoder (with whitening folded in) exported to ONNX matches torch at T = 2 and 16."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import model_format as mf
from engine.encoder import Encoder
from engine.preprocess import PreprocessParams
from trainer.export import PARITY_MIN_COSINE, export_onnx, read_metadata, sample_clips, verify_parity
from trainer.frame_encoder import FrameClipEncoder


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(0)
    encoder = FrameClipEncoder("efficientnet-lite0", pretrained=True, pooling="meanmax").eval()
    encoder.set_projection(torch.randn(48, encoder.pooled_dim) * 0.05, torch.randn(48) * 0.01)
    params = PreprocessParams(size=64)
    path = export_onnx(encoder, tmp_path_factory.mktemp("frames") / "m.onnx", arch="effnet_lite0",
                       model_id="test-frames", params=params)
    return path, encoder, params


def test_onnx_matches_torch_for_2d_and_3d_clips(exported) -> None:
    path, encoder, params = exported
    parity = verify_parity(path, encoder, params.size, frames=(2, 16))
    assert set(parity) == {2, 16} and min(parity.values()) >= PARITY_MIN_COSINE


def test_engine_runs_it_with_its_metadata(exported) -> None:
    path, encoder, params = exported
    meta = read_metadata(path)
    assert meta[mf.META_EMBED_DIM] == "48" and meta[mf.META_ARCH] == "effnet_lite0"
    assert PreprocessParams.from_json(meta[mf.META_PREPROCESS]) == params
    engine_encoder = Encoder(path, threads=1)
    clips = list(sample_clips(16, params.size, batch=2)) + list(sample_clips(2, params.size, batch=2))
    vectors = engine_encoder.embed_clips(clips)
    assert vectors.shape == (4, 48)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        ref = encoder(torch.from_numpy(np.stack(clips[:2]))).numpy()
    assert float((vectors[:2] * ref).sum(axis=1).min()) >= PARITY_MIN_COSINE


def test_model_id_changes_with_the_descriptor_layers_not_only_the_weights() -> None:
    from trainer.export import make_model_id

    torch.manual_seed(0)
    head = FrameClipEncoder("efficientnet-lite0", pretrained=False, layers=("head",))
    multi = FrameClipEncoder("efficientnet-lite0", pretrained=False, layers=("stage6", "head"))
    multi.load_state_dict(head.state_dict())
    assert make_model_id("effnet_lite0", "imagenet", head) != make_model_id("effnet_lite0", "imagenet", multi)

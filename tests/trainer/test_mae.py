"""MAE: patchify layout, random masking, loss on masked tubelets only, and a few steps reduce the loss."""

from __future__ import annotations

import pytest
import torch

from trainer.config import load_config
from trainer.model import build_encoder
from trainer.objectives.mae import MAEDecoder
from trainer.synthetic import SyntheticClips
from trainer.train import PretrainModel, build_optimizer, train_step


@pytest.fixture(scope="module")
def mae():
    torch.manual_seed(0)
    encoder = build_encoder("vit_nano", img_size=32)
    return encoder, MAEDecoder(encoder, decoder_dim=32, decoder_depth=1)


def test_patchify_layout(mae):
    _, decoder = mae
    clip = torch.rand(2, 3, 4, 32, 32)  # 2 x 2 x 2 tubelets
    patches = decoder.patchify(clip)
    assert patches.shape == (2, 8, 2 * 16 * 16 * 3)
    # token order is t, h, w (as the Conv3d grid is flattened); values inside a token are u, y, x, channel
    t, h, w = 1, 0, 1
    token = patches[1, t * 4 + h * 2 + w].reshape(2, 16, 16, 3)
    expected = clip[1, :, 2 * t : 2 * t + 2, 16 * h : 16 * h + 16, 16 * w : 16 * w + 16].permute(1, 2, 3, 0)
    torch.testing.assert_close(token, expected)


@pytest.mark.parametrize("ratio", [0.75, 0.9])
def test_random_masking_keeps_the_right_tokens(ratio):
    x = torch.arange(2 * 40 * 3, dtype=torch.float32).reshape(2, 40, 3)
    kept, mask, ids_restore = MAEDecoder.random_masking(x, ratio)
    n_keep = round(40 * (1 - ratio))
    assert kept.shape == (2, n_keep, 3)
    assert mask.sum(dim=1).tolist() == [40 - n_keep] * 2
    for b in range(2):
        visible = x[b][mask[b] == 0]
        assert sorted(visible[:, 0].tolist()) == sorted(kept[b, :, 0].tolist())
    assert sorted(ids_restore[0].tolist()) == list(range(40))


def test_mask_ratio_depends_on_clip_length(mae):
    _, decoder = mae
    assert decoder.mask_ratio_for(2) == 0.75
    assert decoder.mask_ratio_for(16) == 0.9


def test_loss_ignores_visible_tubelets(mae):
    _, decoder = mae
    clip = torch.rand(1, 3, 2, 32, 32)
    pred = torch.randn(1, 4, 2 * 16 * 16 * 3)
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    other = pred.clone()
    other[:, 1] += 5.0  # change a visible tubelet only
    assert decoder.forward_loss(clip, pred, mask) == decoder.forward_loss(clip, other, mask)
    other[:, 0] += 5.0  # change a masked one
    assert decoder.forward_loss(clip, pred, mask) != decoder.forward_loss(clip, other, mask)


@pytest.mark.parametrize("frames", [2, 16])
def test_training_steps_reduce_the_loss_on_a_fixed_batch(frames):
    cfg = load_config("smoke", ["objective=mae", "optim.lr=0.002", "optim.warmup_steps=1", "train.steps=1000"])
    torch.manual_seed(0)
    model = PretrainModel(cfg)
    optimizer, scheduler = build_optimizer(model, cfg)
    clips = SyntheticClips(16, 32)
    clip = torch.from_numpy(clips.batch([i for i in range(16) if clips.length(i) == frames][:4]))
    losses = []
    for _ in range(8):
        torch.manual_seed(1)  # same mask every step: the loss of one fixed problem
        losses.append(train_step(model, optimizer, scheduler, {"mae_input": clip}, 3.0, 0.996, amp=True)["loss_mae"])
    assert losses[-1] < 0.93 * losses[0], losses

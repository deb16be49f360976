"""Pretraining loop: schedules, balanced batches, config merging, exact resume, 2-process DDP, CLI errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from trainer.config import ConfigError, load_config, parse_override
from trainer.sampler import BalancedBatchSampler
from trainer.train import lr_factor, pretrain, teacher_momentum

REPO = Path(__file__).resolve().parents[2]


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_lr_schedule_warms_up_then_decays_to_min():
    assert lr_factor(0, 10, 100, 0.01) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.01) == pytest.approx(1.0)
    assert lr_factor(10, 10, 100, 0.01) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100, 0.01) == pytest.approx(0.505)
    assert lr_factor(100, 10, 100, 0.01) == pytest.approx(0.01)
    assert teacher_momentum(0, 100, 0.99) == pytest.approx(0.99)
    assert teacher_momentum(100, 100, 0.99) == pytest.approx(1.0)


def test_sampler_balances_modalities_and_never_mixes_lengths():
    lengths = [16] * 100 + [2] * 10 + [2] * 5 + [16] * 5
    modalities = ["ct"] * 100 + ["xray"] * 10 + ["ultrasound"] * 10
    sampler = BalancedBatchSampler(lengths, modalities, {2: 4, 16: 4}, seed=0)
    drawn: Counter[str] = Counter()
    for _ in range(600):
        t, indices = sampler.next_batch()
        assert {lengths[i] for i in indices} == {t}
        drawn.update(modalities[i] for i in indices)
    shares = {m: n / sum(drawn.values()) for m, n in drawn.items()}
    for modality in ("ct", "xray", "ultrasound"):
        assert shares[modality] == pytest.approx(1 / 3, abs=0.05), shares
    weighted = BalancedBatchSampler(lengths, modalities, {2: 4, 16: 4}, {"ct": 0.0}, seed=0)
    assert all(modalities[i] != "ct" for _ in range(50) for i in weighted.next_batch()[1])


def test_sampler_state_resumes_and_ranks_share_lengths():
    lengths, modalities = [2, 16] * 20, ["xray", "ct"] * 20
    a = BalancedBatchSampler(lengths, modalities, {2: 3, 16: 3}, seed=1, rank=0)
    b = BalancedBatchSampler(lengths, modalities, {2: 3, 16: 3}, seed=1, rank=1)
    a.next_batch()
    state = a.state_dict()
    following = [a.next_batch() for _ in range(5)]
    fresh = BalancedBatchSampler(lengths, modalities, {2: 3, 16: 3}, seed=1, rank=0)
    fresh.load_state_dict(state)
    assert [fresh.next_batch() for _ in range(5)] == following
    b.next_batch()
    other = [b.next_batch() for _ in range(5)]
    assert [t for t, _ in other] == [t for t, _ in following]  # same kind of batch on every rank
    assert [i for _, i in other] != [i for _, i in following]  # different clips


def test_config_merges_defaults_experiment_and_overrides():
    cfg = load_config("smoke", ["train.steps=7", "objective=mae", "optim.betas=[0.8, 0.9]", "data.manifest=x.csv"])
    assert cfg["experiment"] == "smoke"
    assert cfg["model"]["arch"] == "vit_nano"  # from the experiment file
    assert cfg["mae"]["mask_ratio_3d"] == 0.9  # from the defaults
    assert cfg["train"]["steps"] == 7 and cfg["objective"] == "mae"
    assert cfg["optim"]["betas"] == [0.8, 0.9] and cfg["data"]["manifest"] == "x.csv"
    assert parse_override("a.b=true") == {"a": {"b": True}}
    with pytest.raises(ConfigError, match="unknown config key 'train.stpes'"):
        load_config(None, ["train.stpes=3"])
    with pytest.raises(ConfigError, match="unknown experiment"):
        load_config("no_such_experiment")
    with pytest.raises(ConfigError, match="not key=value"):
        load_config(None, ["train.steps"])


def test_training_data_excludes_mri_and_uses_the_train_split(monkeypatch, tmp_path):
    import trainer.clip_cache as clip_cache
    from trainer.train import load_training_clips

    seen = {}
    monkeypatch.setattr(clip_cache, "load_clip_set", lambda manifest, split, **kw: seen.update(split=split, **kw))
    load_training_clips(load_config(None, [f"data.manifest={tmp_path / 'manifest.csv'}"]))
    assert seen["split"] == "train" and "mri" in seen["exclude_modalities"]


@pytest.mark.parametrize("objective", ["mae+simdino"])
def test_resume_gives_identical_next_steps(tmp_path, objective):
    cfg = load_config("smoke", [f"objective={objective}", "train.steps=4", "train.ckpt_every=2"])
    pretrain(cfg, tmp_path / "full")
    full = read_metrics(tmp_path / "full")
    assert [int(r["step"]) for r in full] == [1, 2, 3, 4]
    saved = json.loads((tmp_path / "full" / "config.json").read_text())
    assert saved == cfg
    checkpoint = tmp_path / "full" / "checkpoints" / "step-0000002.pt"
    assert checkpoint.is_file() and (tmp_path / "full" / "checkpoints" / "last.pt").is_file()
    resumed_cfg = load_config("smoke", [f"objective={objective}", "train.steps=4", f"train.resume={checkpoint}"])
    pretrain(resumed_cfg, tmp_path / "resumed")
    resumed = read_metrics(tmp_path / "resumed")
    assert [int(r["step"]) for r in resumed] == [3, 4]
    for key in ("loss", "loss_mae", "loss_simdino", "frames"):
        assert [r[key] for r in resumed] == [r[key] for r in full[2:]]


def test_two_process_gloo_ddp_keeps_ranks_identical(tmp_path):
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "trainer",
           "pretrain", "--experiment", "smoke", "--set", "train.steps=3", "--set", "train.device=cpu",
           "--run-dir", str(run_dir)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    replicas = json.loads((run_dir / "replicas.json").read_text())
    assert replicas["world_size"] == 2
    assert len(replicas["checksums"]) == 2 and len(set(replicas["checksums"])) == 1
    assert [int(r["step"]) for r in read_metrics(run_dir)] == [1, 2, 3]
    assert (run_dir / "checkpoints" / "last.pt").is_file()


def test_cli_reports_bad_experiment_in_one_line(capsys, tmp_path):
    from trainer.cli import main

    assert main(["pretrain", "--experiment", "nope", "--run-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("m3ret-train: error: unknown experiment 'nope'") and "\n" not in err

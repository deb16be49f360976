"""trainer.clip_cache: clips through the inference path, cached as uint8, failures skipped and counted."""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.io.case import Case, Failure
from engine.preprocess import DEFAULT_PARAMS, case_to_clip
from trainer.clip_cache import build_clip_set, default_cache_dir, load_clip_set, quantize
from trainer.manifest import ManifestRow, load_manifest, write_manifest

HAS_SCAN = importlib.util.find_spec("engine.io.scan") is not None


def _case_from_npy(path: Path) -> Case:
    pixels = np.load(path)
    kind = {2: "image2d", 3: "volume", 4: "video"}[pixels.ndim]
    return Case(pixels=pixels, kind=kind, modality="OT", source_files=[path], fingerprint=path.name)


@pytest.fixture
def npy_reader(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """A stand-in ``engine.io.scan`` reading ``.npy`` arrays (grey image, grey volume, colour video); logs calls."""
    calls: list[Path] = []

    def read_path(path: Path, limits: object = None) -> Iterator[Case | Failure]:
        calls.append(Path(path))
        try:
            yield _case_from_npy(Path(path))
        except Exception as exc:
            yield Failure(Path(path), f"not an array: {exc}")

    module = types.ModuleType("engine.io.scan")
    module.read_path = read_path  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "engine.io.scan", module)
    return calls


def _synthetic_rows(folder: Path) -> list[ManifestRow]:
    rng = np.random.default_rng(0)
    arrays = {
        "image": rng.integers(0, 4000, (40, 30)).astype(np.int16),  # H W grey
        "volume": rng.normal(size=(20, 32, 32)).astype(np.float32),  # Z Y X grey
        "video": rng.integers(0, 255, (24, 20, 20, 3)).astype(np.uint8),  # T H W RGB
    }
    rows = []
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
        rows.append(ManifestRow(folder / f"{name}.npy", name, "synth", name, "test"))
    (folder / "broken.npy").write_bytes(b"not numpy")
    rows.insert(1, ManifestRow(folder / "broken.npy", "image", "synth", "broken", "test"))
    return rows


def test_quantize_keeps_one_channel_for_grey_and_three_for_colour() -> None:
    grey = np.repeat(np.linspace(0, 1, 2 * 4 * 4, dtype=np.float32).reshape(1, 2, 4, 4), 3, axis=0)
    q = quantize(grey)
    assert q.shape == (1, 2, 4, 4) and q.dtype == np.uint8
    assert np.abs(q[0] / 255.0 - grey[0]).max() <= 0.5 / 255 + 1e-7
    colour = grey.copy()
    colour[2] *= 0.5
    assert quantize(colour).shape == (3, 2, 4, 4)


def test_build_reads_once_caches_and_skips_failures(tmp_path: Path, npy_reader: list[Path]) -> None:
    rows = _synthetic_rows(tmp_path)
    cache = tmp_path / "cache"
    clips = build_clip_set(rows, cache_dir=cache, name="synth", workers=0)

    assert [r.label for r in clips.rows] == ["image", "volume", "video"]
    assert [(r.label, reason.startswith("not an array")) for r, reason in clips.failures] == [("broken", True)]
    assert clips.modalities == ["image", "volume", "video"] and clips.labels[0] == "synth/image"
    assert clips.indices_by_length() == {2: [0], 16: [1, 2]}
    assert {key: g.shape for key, g in clips.groups.items()} == {
        (2, 1): (1, 1, 2, 128, 128), (16, 1): (1, 1, 16, 128, 128), (16, 3): (1, 3, 16, 128, 128)}
    for i, row in enumerate(clips.rows):  # exactly the inference path, up to uint8 rounding
        expected = case_to_clip(_case_from_npy(row.path), DEFAULT_PARAMS)
        got = clips.clips(i)
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert np.abs(got - expected).max() <= 0.5 / 255 + 1e-6
    assert clips.batch([1, 2]).shape == (2, 3, 16, 128, 128)
    with pytest.raises(ValueError, match="different lengths"):
        clips.batch([0, 1])

    assert clips.cache_file is not None and clips.cache_file.parent == cache
    assert len(npy_reader) == 4
    again = build_clip_set(rows, cache_dir=cache, name="synth", workers=0)
    assert len(npy_reader) == 4, "second build must come from the cache file"
    assert again.rows == clips.rows and [r.label for r, _ in again.failures] == ["broken"]
    assert all(np.array_equal(again.clip_uint8(i), clips.clip_uint8(i)) for i in range(len(clips)))

    os.utime(tmp_path / "image.npy", ns=(1, 1))  # a changed source file makes a new cache file
    rebuilt = build_clip_set(rows, cache_dir=cache, name="synth", workers=0)
    assert len(npy_reader) == 8 and rebuilt.cache_file != clips.cache_file


def test_changed_reader_code_builds_a_new_cache(
    tmp_path: Path, npy_reader: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _synthetic_rows(tmp_path)
    first = build_clip_set(rows, cache_dir=tmp_path / "c", workers=0)
    monkeypatch.setattr("trainer.clip_cache.pipeline_fingerprint", lambda: "edited reader")
    second = build_clip_set(rows, cache_dir=tmp_path / "c", workers=0)
    assert len(npy_reader) == 8 and second.cache_file != first.cache_file


def test_larger_size_for_random_crops(tmp_path: Path, npy_reader: list[Path]) -> None:
    rows = _synthetic_rows(tmp_path)
    big = build_clip_set(rows, size=160, cache_dir=tmp_path / "c", workers=0)
    assert big.params.size == 160 and big.clips(2).shape == (3, 16, 160, 160)
    assert big.cache_file is not None and "160px" in big.cache_file.name
    sub = big.subset([2, 0])
    assert sub.labels == ["synth/video", "synth/image"]
    assert np.array_equal(sub.clips(0), big.clips(2)) and sub.indices_by_length() == {16: [0], 2: [1]}


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("M3RET_CACHE", str(tmp_path / "envcache"))
    assert default_cache_dir() == tmp_path / "envcache"
    monkeypatch.delenv("M3RET_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "m3ret" / "clips"


@pytest.mark.skipif(not HAS_SCAN, reason="engine.io.scan not written yet")
def test_real_rows_with_worker_pool(shared_data: Path, tmp_path: Path) -> None:
    from engine.io.scan import read_path

    rows = load_manifest(shared_data / "manifest.csv", splits="test")
    picked = [next(r for r in rows if r.modality == m) for m in ("xray", "ct", "mri")]
    picked += [next(r for r in rows if r.path.suffix == ".mp4")]
    picked += [ManifestRow(tmp_path / "missing.png", "xray", "x", "x", "test")]
    clips = build_clip_set(picked, cache_dir=tmp_path, workers=2)
    assert len(clips) == 4 and [r.path.name for r, _ in clips.failures] == ["missing.png"]
    for i, row in enumerate(clips.rows):
        case = next(c for c in read_path(row.path) if isinstance(c, Case))
        assert np.abs(clips.clips(i) - case_to_clip(case)).max() <= 0.5 / 255 + 1e-6, row.path
    assert clips.length(0) == 2 and clips.length(1) == 16
    small = write_manifest(picked[:3], tmp_path / "small.csv")  # xray, ct, mri rows
    from_manifest = load_clip_set(small, "test", cache_dir=tmp_path, workers=0, exclude_modalities=["ct"])
    assert from_manifest.modalities == ["xray", "mri"]
    assert np.array_equal(from_manifest.clip_uint8(1), clips.clip_uint8(2))

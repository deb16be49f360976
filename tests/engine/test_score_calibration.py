"""engine.score_calibration: a raw cosine placed among the library's own nearest-neighbour similarities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.indexer import index_paths
from engine.library import Library
from engine.score_calibration import (
    CALIBRATION_FILE,
    PERCENTILES,
    ScoreCalibration,
    calibration_for,
    nearest_neighbour_cosines,
)
from tests.engine.conftest import write_phantoms


@pytest.fixture(scope="module")
def library_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    root = tmp_path_factory.mktemp("calibration")
    write_phantoms(root / "files", 8)
    with Library.open(root / "lib", model_path=tiny_model) as lib:
        index_paths(lib, [root / "files"], workers=0)
    return root / "lib"


def test_match_is_the_percentile_among_nearest_neighbour_cosines() -> None:
    quantiles = np.linspace(0.90, 1.00, 101)  # percentile p at cosine 0.90 + p / 1000
    calibration = ScoreCalibration("m", 100, quantiles)
    assert calibration.match(0.95) == pytest.approx(50.0)
    assert calibration.match(0.905) == pytest.approx(5.0)
    assert calibration.match(0.5) == 0.0 and calibration.match(-0.3) == 0.0  # negative cosines read 0
    assert calibration.match(1.0) == 100.0
    ties = ScoreCalibration("m", 100, np.r_[np.full(50, 0.9), np.linspace(0.9, 1.0, 51)])
    assert 0.0 <= ties.match(0.9) <= 100.0 and ties.match(0.95) > ties.match(0.9)  # ties do not break interp


def test_calibration_is_computed_from_the_library_and_cached(library_dir: Path, tiny_model: Path) -> None:
    with Library.open(library_dir, model_path=tiny_model) as lib:
        cosines = nearest_neighbour_cosines(lib)
        assert len(cosines) == 16 and np.all(cosines <= 1.0 + 1e-5)
        ids = lib.index.keys()
        vectors = lib.index.get(ids)  # 16 D
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -np.inf)
        np.testing.assert_allclose(np.sort(cosines), np.sort(sims.max(axis=1)), atol=1e-3)  # f16 index
        calibration = calibration_for(lib)
        assert calibration is not None and calibration.model_id == lib.model_id and calibration.n_cases == 16
        np.testing.assert_allclose(calibration.quantiles, np.percentile(cosines, PERCENTILES))
        cached = json.loads((library_dir / CALIBRATION_FILE).read_text())
        assert cached["n_cases"] == 16 and len(cached["quantiles"]) == 101
        written = (library_dir / CALIBRATION_FILE).stat().st_mtime_ns
        again = calibration_for(lib)  # from the cache file: not recomputed, not rewritten
        assert (library_dir / CALIBRATION_FILE).stat().st_mtime_ns == written
        np.testing.assert_allclose(again.quantiles, calibration.quantiles, atol=1e-6)


def test_calibration_is_redone_when_the_library_grows(tmp_path: Path, tiny_model: Path) -> None:
    write_phantoms(tmp_path / "a", 6)
    write_phantoms(tmp_path / "b", 6, first_seed=50)
    with Library.open(tmp_path / "lib", model_path=tiny_model) as lib:
        index_paths(lib, [tmp_path / "a"], workers=0)
        assert calibration_for(lib).n_cases == 12
        index_paths(lib, [tmp_path / "b"], workers=0)
        assert calibration_for(lib).n_cases == 24


def test_small_library_has_no_calibration(tmp_path: Path, tiny_model: Path) -> None:
    write_phantoms(tmp_path / "files", 2)
    with Library.open(tmp_path / "lib", model_path=tiny_model) as lib:
        index_paths(lib, [tmp_path / "files"], workers=0)
        assert calibration_for(lib) is None


def test_a_damaged_cache_file_is_recomputed(library_dir: Path, tiny_model: Path) -> None:
    (library_dir / CALIBRATION_FILE).write_text("{broken")
    with Library.open(library_dir, model_path=tiny_model) as lib:
        assert calibration_for(lib) is not None
    assert json.loads((library_dir / CALIBRATION_FILE).read_text())["n_cases"] == 16

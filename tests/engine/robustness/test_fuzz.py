"""A fast subset of the robustness run: generated malformed inputs (every kind of ``generator``) are indexed in
one run that ends normally, with every input accounted for (a case or a failure with a one-line reason).

The full run (>= 10,000 inputs, peak memory, wall time) is ``python -m benchmarks.robustness``."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import ReadLimits
from engine.indexer import index_paths
from engine.library import Library
from tests.engine.robustness.generator import generate, unaccounted
from tests.engine.test_indexer import assert_consistent

FAST_INPUTS = 160
SEED = 20261128


@pytest.fixture(scope="module")
def fuzz_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("fuzz")
    return folder, generate(folder, FAST_INPUTS, seed=SEED, bombs=False)


def test_the_generator_is_reproducible_from_its_seed(tmp_path: Path,
                                                     fuzz_inputs: tuple[Path, list[Path]]) -> None:
    folder, inputs = fuzz_inputs
    again = generate(tmp_path / "again", 60, seed=SEED, bombs=False)
    first = [p for p in inputs if p.is_file() and not p.is_symlink()][:40]
    second = {p.relative_to(tmp_path / "again"): p for p in again if p.is_file() and not p.is_symlink()}
    compared = [p for p in first if p.relative_to(folder) in second]
    assert len(compared) >= 20
    assert all(p.read_bytes() == second[p.relative_to(folder)].read_bytes() for p in compared)


def test_every_generated_input_is_a_case_or_a_one_line_failure(fuzz_inputs: tuple[Path, list[Path]],
                                                                tmp_path: Path, tiny_model: Path) -> None:
    folder, inputs = fuzz_inputs
    limits = ReadLimits(unit_seconds=30.0)
    with Library.open(tmp_path / "lib", model_path=tiny_model) as lib:
        report = index_paths(lib, [folder], workers=0, limits=limits)
        cases = lib.catalog.list_cases(with_thumbnails=False)
        case_files = {p for r in cases for p in r.source_paths}
        failures = lib.catalog.failures()
    assert not report.cancelled
    assert report.n_added > 10 and report.n_failed > 50  # both readable and broken inputs were made
    assert all("\n" not in f.reason and len(f.reason) <= 300 for f in report.failures)
    assert unaccounted(inputs, case_files, {f.path for f in failures}) == []
    assert assert_consistent(tmp_path / "lib") == len(cases)
    reasons = " | ".join(f.reason for f in report.failures)
    for expected in ("named pipe", "device", "link loop", "refused:"):
        assert expected in reasons


def test_bombs_are_refused_or_decoded_reduced(tmp_path: Path) -> None:
    from engine.io.scan import read_path
    from tests.engine.robustness.generator import _BOMB_SUFFIX, _Seeds

    import numpy as np

    seeds = _Seeds(np.random.default_rng(0))
    for kind in ("jpeg", "png", "dcm"):  # (the TIFF and gzip bombs take seconds to make: benchmark only)
        path = tmp_path / f"bomb{_BOMB_SUFFIX[kind]}"
        path.write_bytes(seeds.bomb(kind))
        (item,) = list(read_path(path))
        if hasattr(item, "reason"):
            assert "refused" in item.reason or "exceeds" in item.reason, item.reason
        else:
            assert item.pixels.size <= ReadLimits().max_frame_samples

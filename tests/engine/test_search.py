"""engine.search: known-answer phantoms, filters with exact top-k counts, real files, the bundled model's quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.indexer import index_paths
from engine.library import Library
from engine.search import SearchError, SearchFilters, search_by_case, search_by_clip_case, search_by_path
from tests.engine.conftest import MANIFEST_MODALITY_CODES, copy_subset, shared_subset, write_phantoms


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> tuple[Path, dict[Path, str]]:
    """A library of 8 discs + 8 frames, and 3 + 3 held-back query files (never indexed)."""
    root = tmp_path_factory.mktemp("phantom_search")
    write_phantoms(root / "indexed", 8)
    queries = write_phantoms(root / "queries", 3, first_seed=100)
    with Library.open(root / "lib", model_path=tiny_model) as lib:
        assert index_paths(lib, [root / "indexed"], workers=0).n_added == 16
    return root / "lib", queries


@pytest.fixture()
def subset(subset_library: tuple[Path, list, Path]) -> Library:
    lib = Library.open(subset_library[0])
    yield lib
    lib.close()


def _family(path: str) -> str:
    return Path(path).parent.name


def test_held_back_query_finds_its_family_first(phantoms: tuple[Path, dict[Path, str]], tiny_model: Path) -> None:
    library_dir, queries = phantoms
    with Library.open(library_dir, model_path=tiny_model) as lib:
        n_before = lib.catalog.count_cases()
        for query, family in queries.items():
            case, results = search_by_path(lib, query, k=8)
            assert case.kind == "image2d" and case.source_files[0] == query
            assert len(results) == 8 and [r.rank for r in results] == list(range(1, 9))
            assert all(_family(r.source_paths[0]) == family for r in results), (query, [r.path for r in results])
            assert all(a.score >= b.score for a, b in zip(results, results[1:]))
            assert results[0].thumbnail and results[0].query_kind == "image2d"
        assert lib.catalog.count_cases() == n_before  # queries are never added


def test_search_by_case_leaves_the_case_out(phantoms: tuple[Path, dict[Path, str]]) -> None:
    with Library.open(phantoms[0]) as lib:
        record = lib.catalog.list_cases(text="disc_003")[0]
        results = search_by_case(lib, record.id, k=7)
        assert record.id not in [r.case_id for r in results]
        assert len(results) == 7 and all(_family(r.path) == "disc" for r in results)
        excluded = search_by_case(lib, record.id, k=20, filters=SearchFilters(exclude_case_ids=[results[0].case_id]))
        assert len(excluded) == 14 and results[0].case_id not in {r.case_id for r in excluded}


def test_in_memory_case_matches_file_query(phantoms: tuple[Path, dict[Path, str]], tiny_model: Path) -> None:
    library_dir, queries = phantoms
    with Library.open(library_dir, model_path=tiny_model) as lib:
        case, by_path = search_by_path(lib, next(iter(queries)), k=5)
        by_case = search_by_clip_case(lib, case, k=5)
    assert [r.case_id for r in by_case] == [r.case_id for r in by_path]


def test_indexed_file_is_this_case_not_a_result(subset: Library, subset_library: tuple[Path, list, Path],
                                                 tiny_model: Path) -> None:
    """A query already in the library is recognised by its content and left out, as ``search_by_case`` does."""
    files_dir = subset_library[2]
    lib = Library.open(subset.path, model_path=tiny_model)
    for record in subset.catalog.list_cases(with_thumbnails=False)[::6]:
        _, results = search_by_path(lib, Path(record.path), k=3)
        assert [r.id for r in results.this_case] == [record.id], record.path
        assert record.id not in [r.case_id for r in results] and len(results) == 3
        assert all(Path(r.path).is_relative_to(files_dir) for r in results)
        assert [r.case_id for r in results] == [r.case_id for r in search_by_case(lib, record.id, k=3)]
    lib.close()


def test_a_copy_of_an_indexed_file_is_this_case(phantoms: tuple[Path, dict[Path, str]], tmp_path: Path,
                                                tiny_model: Path) -> None:
    import shutil

    with Library.open(phantoms[0], model_path=tiny_model) as lib:
        record = lib.catalog.list_cases(text="frame_002")[0]
        copy = tmp_path / "renamed.png"
        shutil.copy(record.path, copy)
        case, results = search_by_path(lib, copy, k=5)
        assert [r.id for r in results.this_case] == [record.id] and record.id not in [r.case_id for r in results]
        by_case = search_by_case(lib, record.id, k=5)
        assert [r.id for r in by_case.this_case] == [record.id]
        assert [r.case_id for r in by_case] == [r.case_id for r in results]


def test_results_carry_a_readable_match_score(phantoms: tuple[Path, dict[Path, str]], tiny_model: Path) -> None:
    with Library.open(phantoms[0], model_path=tiny_model) as lib:
        _, results = search_by_path(lib, next(iter(phantoms[1])), k=16)
    matches = [r.match for r in results]
    assert all(m is not None and 0.0 <= m <= 100.0 for m in matches)
    assert matches == sorted(matches, reverse=True)  # monotone in the raw cosine
    assert results[0].score_text == f"match {results[0].match:.0f}"
    assert results[0].to_json()["score"] == round(results[0].score, 6)  # the raw cosine stays in --json


@pytest.mark.parametrize("modality", ["CT", "XR", "US"])
def test_modality_filter_returns_exactly_k(subset: Library, modality: str) -> None:
    query = subset.catalog.list_cases(modality="MR", limit=1)[0]
    n_modality = subset.catalog.count_cases(modality=modality)
    for k in (3, n_modality, n_modality + 5):
        results = search_by_case(subset, query.id, k=k, filters=SearchFilters(modalities=[modality]))
        assert len(results) == min(k, n_modality)
        assert {r.modality for r in results} == {modality}


def test_kind_filter(subset: Library) -> None:
    query = subset.catalog.list_cases(kind="image2d", limit=1)[0]
    n_videos = subset.catalog.count_cases(kind="video")
    results = search_by_case(subset, query.id, k=10, filters=SearchFilters(kinds=["video"]))
    assert len(results) == n_videos and all(r.kind == "video" for r in results)


def test_same_and_cross_modality(subset: Library) -> None:
    query = subset.catalog.list_cases(modality="XR", limit=1)[0]
    n_xr = subset.catalog.count_cases(modality="XR")
    same = search_by_case(subset, query.id, k=50, filters=SearchFilters(same_modality=True))
    assert len(same) == n_xr - 1 and {r.modality for r in same} == {"XR"}
    cross = search_by_case(subset, query.id, k=10, filters=SearchFilters(cross_modal=True))
    assert len(cross) == 10 and "XR" not in {r.modality for r in cross}
    assert all(r.query_modality == "XR" for r in cross)
    with pytest.raises(SearchError):
        search_by_case(subset, query.id, filters=SearchFilters(same_modality=True, cross_modal=True))


def test_unfiltered_top_k_is_full(subset: Library) -> None:
    query = subset.catalog.list_cases(limit=1)[0]
    total = subset.catalog.count_cases()
    assert len(search_by_case(subset, query.id, k=10)) == 10
    assert len(search_by_case(subset, query.id, k=500)) == total - 1


def test_bad_queries_are_one_line_errors(subset: Library, tmp_path: Path, tiny_model: Path) -> None:
    with pytest.raises(SearchError, match="no case with id"):
        search_by_case(subset, 10**9)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    lib = Library.open(subset.path, model_path=tiny_model)
    with pytest.raises(SearchError, match="broken.png"):
        search_by_path(lib, bad)
    with pytest.raises(SearchError, match="no such file"):
        search_by_path(lib, tmp_path / "absent.png")
    lib.close()


def _same_label_precision(shared_data: Path, library: Library, files_dir: Path, indexed: list[dict[str, str]],
                          k: int = 5, held_back_per_modality: int = 10) -> tuple[float, float, int]:
    """Mean share of same-label cases in the same-modality top-k, and the chance level, over every indexed case
    (leave-one-out: the query case is left out of its results) plus held-back test files searched by path."""
    import csv

    label_of = {r["path"]: r["label"] for r in csv.DictReader((shared_data / "manifest.csv").open())}
    records = library.catalog.list_cases(with_thumbnails=False)
    label = {r.id: label_of[Path(r.path).relative_to(files_dir).as_posix()] for r in records}
    by_modality: dict[str, list[int]] = {}
    for r in records:
        by_modality.setdefault(r.modality, []).append(r.id)
    same = SearchFilters(same_modality=True)
    precisions, chances = [], []

    def score(query_label: str, modality: str, hits: list, exclude: int | None = None) -> None:
        pool = [label[i] for i in by_modality[modality] if i != exclude]
        precisions.append(np.mean([label[h.case_id] == query_label for h in hits]))
        chances.append(np.mean([lab == query_label for lab in pool]))

    for record in records:  # leave-one-out over the library
        score(label[record.id], record.modality, search_by_case(library, record.id, k=k, filters=same), record.id)
    indexed_paths = {r["path"] for r in indexed}
    test_rows = [r for r in csv.DictReader((shared_data / "manifest.csv").open()) if r["split"] == "test"]
    for modality, code in MANIFEST_MODALITY_CODES.items():
        if code not in by_modality:
            continue
        held_back = [r for r in test_rows if r["modality"] == modality and r["path"] not in indexed_paths]
        for row in held_back[:held_back_per_modality]:
            _, hits = search_by_path(library, shared_data / row["path"], k=k, filters=same, modality=code)
            score(row["label"], code, hits)
    return float(np.mean(precisions)), float(np.mean(chances)), len(precisions)


def test_bundled_model_ranks_same_label_above_chance(shared_data: Path, default_model: Path,
                                                     tmp_path: Path) -> None:
    rows = shared_subset(shared_data, {"xray": 60, "mri": 60, "ct": 30})
    by_modality = copy_subset(shared_data, rows, tmp_path / "files")
    with Library.open(tmp_path / "lib", model_path=default_model) as lib:
        for modality, paths in by_modality.items():
            index_paths(lib, paths, workers=0, modality=MANIFEST_MODALITY_CODES[modality])
        precision, chance, n = _same_label_precision(shared_data, lib, tmp_path / "files", rows)
    assert n == 150 + 30
    assert precision > chance, f"same-label P@5 {precision:.3f} vs chance {chance:.3f} over {n} queries"

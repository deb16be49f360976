"""engine.evaluate: metrics on embeddings with known rankings, same-patient exclusion, a labelled phantom library."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.catalog_schema import CaseRow
from engine.evaluate import evaluate_library, per_query_scores, raw_pixel_embeddings
from engine.indexer import index_paths
from engine.labels import set_many_labels
from engine.library import Library, LibraryError
from tests.engine.conftest import write_phantoms


def _unit(angles_deg: list[float]) -> np.ndarray:
    a = np.radians(angles_deg)
    return np.stack([np.cos(a), np.sin(a)], axis=1).astype(np.float32)  # N 2


def test_known_ranking_gives_known_scores() -> None:
    # on a circle: 0 and 10 deg are "a", 20 and 200 deg are "b". Query 20 deg ranks 10 (a), 0 (a), 200 (b);
    # query 200 deg ranks 0 (a, 160 deg away), 10 (a), 20 (b)
    emb = _unit([0, 10, 20, 200])
    scores = per_query_scores(emb, ["a", "a", "b", "b"], [None] * 4, ks=(1, 3))
    assert scores["R"].tolist() == [1, 1, 1, 1]
    assert scores["P@1"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert scores["P@3"].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1 / 3])
    assert scores["mAP@R"].tolist() == [1.0, 1.0, 0.0, 0.0]


def test_same_patient_cases_are_excluded() -> None:
    emb = _unit([0, 1, 30, 90, 91])
    values = ["a", "a", "a", "b", "b"]
    without = per_query_scores(emb, values, [None] * 5, ks=(1,))
    assert without["P@1"].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0]
    # 0 and 1 are one patient, 3 and 4 another: query 0's nearest same-label case is now 30 deg (still "a"),
    # query 3's only other "b" is its own patient's, so it has no relevant case left and is not scored
    patients = ["p1", "p1", "p2", "p3", "p3"]
    scores = per_query_scores(emb, values, patients, ks=(1,))
    assert scores["R"].tolist() == [1, 1, 2, 0, 0]
    assert scores["P@1"][:3].tolist() == [1.0, 1.0, 1.0]
    assert math.isnan(scores["P@1"][3]) and math.isnan(scores["mAP@R"][4])


@pytest.fixture()
def labelled(tmp_path: Path, tiny_model: Path) -> Library:
    files = write_phantoms(tmp_path / "files", 4)
    lib = Library.open(tmp_path / "lib", model_path=tiny_model)
    assert index_paths(lib, [tmp_path / "files"], workers=0, modality="XR").n_added == 8
    by_path = {r.source_paths[0]: r.id for r in lib.catalog.list_cases()}
    set_many_labels(lib.catalog, {by_path[str(p.absolute())]: {"label": fam, "size": "small" if i % 2 else "big"}
                                  for i, (p, fam) in enumerate(sorted(files.items()))})
    yield lib
    lib.close()


def test_library_evaluation_separates_the_phantom_families(labelled: Library) -> None:
    results = evaluate_library(labelled, ks=(1, 3))
    assert results["n_cases"] == 8 and results["same_patient_excluded"] is False
    model = results["methods"]["model"]
    # the test model keeps image similarity, and discs vs frames differ in every pixel: every top-3 is right
    assert model["overall"]["P@1"] == 1.0 and model["overall"]["P@3"] == 1.0 and model["overall"]["mAP@R"] == 1.0
    assert set(model["per_label"]) == {"disc", "frame"} and set(model["per_modality"]) == {"XR"}
    assert model["per_label"]["disc"]["n_scored"] == 4
    raw = results["methods"]["raw_pixels"]
    assert raw["overall"]["n_scored"] == 8 and 0.0 <= raw["overall"]["P@1"] <= 1.0
    by_tag = evaluate_library(labelled, key="size", ks=(1,))
    assert set(by_tag["methods"]["model"]["per_label"]) == {"big", "small"}


def test_patient_ids_turn_on_the_exclusion(labelled: Library) -> None:
    with labelled.catalog.session() as session:  # the phantoms have no DICOM header: give them patients
        for row in session.query(CaseRow).all():
            row.patient_id = f"P{row.id % 4}"
    results = evaluate_library(labelled, ks=(1,))
    assert results["same_patient_excluded"] is True and results["n_patients"] == 4


def test_raw_pixel_baseline_uses_thumbnails(labelled: Library) -> None:
    records = list(labelled.catalog.get_cases(labelled.catalog.filter_case_ids().tolist()).values())
    emb = raw_pixel_embeddings(records)
    assert emb.shape == (8, 32 * 32)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_too_few_labels_is_a_clear_error(tmp_path: Path, tiny_model: Path) -> None:
    write_phantoms(tmp_path / "files", 1)
    with Library.open(tmp_path / "lib", model_path=tiny_model) as lib:
        index_paths(lib, [tmp_path / "files"], workers=0)
        with pytest.raises(LibraryError, match="fewer than two cases have a 'label'"):
            evaluate_library(lib)


def test_a_patient_tag_turns_on_the_exclusion(labelled: Library) -> None:
    ids = labelled.catalog.filter_case_ids().tolist()
    set_many_labels(labelled.catalog, {case_id: {"patient": f"T{n // 2}"} for n, case_id in enumerate(ids)})
    results = evaluate_library(labelled, ks=(1,))
    assert results["same_patient_excluded"] is True and results["n_patients"] == 4

"""engine.modality: the model's modality head predicts what a file does not say; a tag or --modality always wins.

The head used here is built from the tiny test model's own embeddings of two phantom families (discs labelled
US, frames labelled XR): a nearest-class-mean rule written as a softmax-linear head, so the test does not depend
on the bundled model's numbers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.catalog import Catalog
from engine.encoder import Encoder
from engine.indexer import index_paths
from engine.library import Library
from engine.modality import ModalityHead, describe, head_from_metadata, modality_code, resolve
from engine.model_format import META_MODALITY_HEAD
from engine.search import SearchFilters, search_by_path
from tests.engine.conftest import build_pooling_model, write_phantoms

FAMILY_CODES = {"disc": "US", "frame": "XR"}


def class_mean_head(encoder: Encoder, files: dict[Path, str], min_confidence: float, scale: float = 200.0
                    ) -> ModalityHead:
    """Softmax over ``scale * cos(z, class mean)``: a linear head that picks the nearest class mean."""
    from engine.io.scan import read_path

    by_code: dict[str, list[np.ndarray]] = {}
    for path, family in files.items():
        (case,) = list(read_path(path))
        by_code.setdefault(FAMILY_CODES[family], []).append(encoder.embed_cases([case])[0])
    classes = tuple(sorted(by_code))
    means = np.stack([np.mean(by_code[c], axis=0) for c in classes])  # C D
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    return ModalityHead(classes, (scale * means).astype(np.float32), np.zeros(len(classes), np.float32),
                        min_confidence)


def model_with_head(tmp_path: Path, min_confidence: float) -> tuple[Path, dict[Path, str]]:
    """A tiny model whose metadata holds a head fitted on 4 + 4 phantoms."""
    import onnx

    model = build_pooling_model(tmp_path / "model" / "tiny.onnx")
    train = write_phantoms(tmp_path / "train", 4, first_seed=200)
    head = class_mean_head(Encoder(model, threads=1), train, min_confidence)
    proto = onnx.load(str(model))
    proto.metadata_props.add(key=META_MODALITY_HEAD, value=head.to_json())
    onnx.save(proto, str(model))
    return model, train


def test_head_round_trips_through_model_metadata(tmp_path: Path) -> None:
    model, _ = model_with_head(tmp_path, 0.6)
    encoder = Encoder(model, threads=1)
    assert encoder.modality_head is not None and encoder.modality_head.classes == ("US", "XR")
    assert head_from_metadata({META_MODALITY_HEAD: "{not json"}) is None  # a broken head is ignored, not fatal
    assert head_from_metadata({}) is None
    wrong_size = ModalityHead(("A", "B"), np.zeros((2, 5), np.float32), np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="5-d"):
        wrong_size.predict(np.zeros((1, 4), np.float32))


def test_indexer_predicts_unknown_modalities_and_keeps_confidence(tmp_path: Path) -> None:
    model, _ = model_with_head(tmp_path, 0.6)
    files = write_phantoms(tmp_path / "files", 3)  # PNGs: their reader says OT
    with Library.open(tmp_path / "lib", model_path=model) as lib:
        index_paths(lib, [tmp_path / "files"], workers=0)
        records = {Path(r.path): r for r in lib.catalog.list_cases(with_thumbnails=False)}
    assert len(records) == 6
    for path, family in files.items():
        record = records[path]
        assert record.predicted_modality == FAMILY_CODES[family], path
        assert record.modality == FAMILY_CODES[family] and record.modality_confidence >= 0.6
        assert record.modality_text == f"{record.modality}, predicted {record.modality_confidence:.2f}"


def test_low_confidence_stays_ot_and_the_user_or_the_file_always_wins(tmp_path: Path) -> None:
    model, _ = model_with_head(tmp_path, min_confidence=1.01)  # nothing is ever confident enough
    write_phantoms(tmp_path / "files", 2)
    with Library.open(tmp_path / "lib", model_path=model) as lib:
        index_paths(lib, [tmp_path / "files"], workers=0)
        records = lib.catalog.list_cases(with_thumbnails=False)
        assert {r.modality for r in records} == {"OT"}
        assert all(r.predicted_modality in ("US", "XR") and r.modality_text.startswith("OT (") for r in records)
        index_paths(lib, [tmp_path / "files"], workers=0, modality="MR")  # the user's word, unchanged files
        records = lib.catalog.list_cases(with_thumbnails=False)
        assert {r.modality for r in records} == {"MR"} and {r.predicted_modality for r in records} == {None}
    dicom = _pydicom_ct(tmp_path / "ct")
    with Library.open(tmp_path / "lib2", model_path=model) as lib:
        index_paths(lib, [dicom], workers=0)
        (record,) = lib.catalog.list_cases(with_thumbnails=False)
        assert record.modality == "CT" and record.predicted_modality is None and record.modality_text == "CT"


def test_query_of_unknown_modality_gets_the_predicted_one(tmp_path: Path) -> None:
    model, _ = model_with_head(tmp_path, 0.6)
    write_phantoms(tmp_path / "files", 3)
    query = write_phantoms(tmp_path / "queries", 1, first_seed=300)
    with Library.open(tmp_path / "lib", model_path=model) as lib:
        index_paths(lib, [tmp_path / "files"], workers=0)
        for path, family in query.items():
            case, results = search_by_path(lib, path, k=3)
            assert results.query_prediction is not None and case.modality == FAMILY_CODES[family]
            _, same = search_by_path(lib, path, k=10, filters=SearchFilters(same_modality=True))
            assert len(same) == 3 and {r.modality for r in same} == {FAMILY_CODES[family]}


def test_catalog_v1_is_migrated(tmp_path: Path) -> None:
    """A catalog written before modality prediction (schema v1) opens, keeps its cases and gains the columns."""
    import sqlite3

    model, _ = model_with_head(tmp_path, 0.6)
    write_phantoms(tmp_path / "files", 1)
    with Library.open(tmp_path / "lib", model_path=model) as lib:
        index_paths(lib, [tmp_path / "files"], workers=0)
    db = tmp_path / "lib" / "catalog.sqlite"
    with sqlite3.connect(db) as conn:  # back to v1: drop the two columns
        conn.execute("ALTER TABLE cases DROP COLUMN predicted_modality")
        conn.execute("ALTER TABLE cases DROP COLUMN modality_confidence")
        conn.execute("UPDATE schema_version SET version = 1")
    catalog = Catalog.open(tmp_path / "lib")
    try:
        records = catalog.list_cases(with_thumbnails=False)
        assert len(records) == 2 and all(r.predicted_modality is None for r in records)
    finally:
        catalog.close()


def test_resolve_and_describe() -> None:
    head = ModalityHead(("CT", "XR"), np.array([[10.0, 0.0], [0.0, 10.0]], np.float32), np.zeros(2, np.float32), 0.9)
    sure = resolve(head, "OT", np.array([1.0, 0.0], np.float32))
    assert sure is not None and (sure.predicted, sure.modality) == ("CT", "CT") and sure.confidence > 0.99
    unsure = resolve(head, "", np.array([0.71, 0.70], np.float32))
    assert unsure is not None and unsure.predicted == "CT" and unsure.modality == "OT" and unsure.confidence < 0.9
    assert resolve(head, "MR", np.array([1.0, 0.0], np.float32)) is None  # the file said MR
    assert resolve(None, "OT", np.array([1.0, 0.0], np.float32)) is None  # no head: stays OT
    assert describe("XR", "XR", 0.968) == "XR, predicted 0.97"
    assert describe("OT", "US", 0.41) == "OT (US? 0.41)" and describe("CT", None, None) == "CT"
    assert [modality_code(m) for m in ("xray", "ct", "mri", "ultrasound", "endoscopy", "PT", "whatever")] == [
        "XR", "CT", "MR", "US", "ES", "PT", None]


def _pydicom_ct(folder: Path) -> Path:
    from pydicom.data import get_testdata_file

    folder.mkdir(parents=True)
    target = folder / "ct.dcm"
    shutil.copy(get_testdata_file("CT_small.dcm"), target)
    return target

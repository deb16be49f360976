"""engine.labels: store, CSV import (relative paths, case ids, tags, unknown rows), summaries, cascade on removal."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.indexer import index_paths
from engine.labels import (
    LabelsError,
    all_labels,
    case_ids_with,
    import_labels_csv,
    label_keys,
    label_values,
    labels_of,
    set_labels,
    summarize,
)
from engine.library import Library
from tests.engine.conftest import write_phantoms


@pytest.fixture()
def library(tmp_path: Path, tiny_model: Path) -> Library:
    write_phantoms(tmp_path / "files", 3)
    lib = Library.open(tmp_path / "lib", model_path=tiny_model)
    assert index_paths(lib, [tmp_path / "files"], workers=0).n_added == 6
    yield lib
    lib.close()


def _id_of(lib: Library, name: str) -> int:
    (record,) = lib.catalog.list_cases(text=name)
    return record.id


def test_import_csv_relative_paths_ids_tags_and_unknown_rows(library: Library, tmp_path: Path) -> None:
    frame_id = _id_of(library, "frame_002")
    csv_file = tmp_path / "files" / "labels.csv"
    csv_file.write_text(
        "path,case_id,label,site\n"
        "disc/disc_000.png,,round,A\n"
        "disc/disc_001.png,,round,\n"
        f",{frame_id},square,B\n"
        "disc/not_there.png,,round,A\n"
        ",9999,square,A\n"
        "frame,,,C\n",  # a folder: every case under it gets the tag, label left alone where empty
        encoding="utf-8",
    )
    report = import_labels_csv(library.catalog, csv_file)
    assert report.rows == 6
    assert report.cases_labelled == 2 + 3  # two discs + every frame (folder row)
    assert len(report.unknown) == 2 and "not_there.png" in report.unknown[0] and "9999" in report.unknown[1]
    labels = all_labels(library.catalog)
    assert labels == {_id_of(library, "disc_000"): "round", _id_of(library, "disc_001"): "round", frame_id: "square"}
    tags = labels_of(library.catalog, [frame_id, _id_of(library, "disc_000"), _id_of(library, "frame_000")])
    assert tags[frame_id] == {"label": "square", "site": "C"}  # the later folder row overrides the tag
    assert tags[_id_of(library, "disc_000")] == {"label": "round", "site": "A"}
    assert tags[_id_of(library, "frame_000")] == {"site": "C"}
    assert label_keys(library.catalog) == ["label", "site"]
    assert label_values(library.catalog) == ["round", "square"]
    assert case_ids_with(library.catalog, "C", key="site") == {_id_of(library, f"frame_00{i}") for i in range(3)}


def test_set_delete_and_cascade_on_removal(library: Library) -> None:
    case_id = _id_of(library, "disc_002")
    set_labels(library.catalog, case_id, {"label": "round", "reader": "dr x"})
    set_labels(library.catalog, case_id, {"reader": ""})  # empty value deletes the key
    assert labels_of(library.catalog, [case_id]) == {case_id: {"label": "round"}}
    with pytest.raises(KeyError, match="4242"):
        set_labels(library.catalog, 4242, {"label": "x"})
    library.remove_cases([case_id])
    assert all_labels(library.catalog) == {}


def test_labels_survive_reindexing_a_changed_file(library: Library, tmp_path: Path) -> None:
    import cv2

    from tests.engine.conftest import phantom_image

    case_id = _id_of(library, "disc_001")
    set_labels(library.catalog, case_id, {"label": "round"})
    path = tmp_path / "files" / "disc" / "disc_001.png"
    cv2.imwrite(str(path), phantom_image("disc", 77))
    report = index_paths(library, [tmp_path / "files"], workers=0)
    assert report.n_updated == 1
    assert all_labels(library.catalog) == {_id_of(library, "disc_001"): "round"}


def test_bad_csv_is_one_clear_error(library: Library, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("file,diagnosis\na.png,x\n", encoding="utf-8")
    with pytest.raises(LabelsError, match=r"bad\.csv: needs a 'path' or 'case_id' column"):
        import_labels_csv(library.catalog, bad)
    no_label = tmp_path / "nolabel.csv"
    no_label.write_text("path,site\na.png,x\n", encoding="utf-8")
    with pytest.raises(LabelsError, match=r"nolabel\.csv: needs a 'label' column"):
        import_labels_csv(library.catalog, no_label)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(LabelsError, match=r"binary\.csv"):
        import_labels_csv(library.catalog, binary)


def test_summarize_counts_the_top_k() -> None:
    labels = ["pneumonia"] * 7 + ["normal"] * 2 + [None]
    assert summarize(labels) == "7 of 10 similar cases: pneumonia; 2: normal"
    assert summarize([None, None]) == ""

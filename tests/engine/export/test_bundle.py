"""engine.export.bundle: copies + report + export.json in one folder; the query row and scores; unknown ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.export.bundle import export_bundle
from engine.indexer import index_paths
from engine.labels import set_labels
from engine.library import Library
from engine.search import search_by_path
from tests.engine.conftest import write_phantoms


def test_bundle_with_query_scores_and_labels(tmp_path: Path, tiny_model: Path) -> None:
    write_phantoms(tmp_path / "files", 3)
    queries = write_phantoms(tmp_path / "queries", 1, first_seed=40)
    with Library.open(tmp_path / "lib", model_path=tiny_model) as lib:
        index_paths(lib, [tmp_path / "files"], workers=0)
        query_path = next(p for p, family in queries.items() if family == "disc")
        case, results = search_by_path(lib, query_path, k=3)
        set_labels(lib.catalog, results[0].case_id, {"label": "round", "site": "A"})
        doc = export_bundle(lib, [r.case_id for r in results], tmp_path / "out", copies=True, query=case,
                            scores={r.case_id: (r.rank, r.score) for r in results})
        assert [c["folder"] for c in doc["cases"]] == ["case001", "case002", "case003"]
        saved = json.loads((tmp_path / "out" / "export.json").read_text())
        assert saved == doc and doc["labels_summary"] == "1 of 3 similar cases: round"
        report = json.loads((tmp_path / "out" / "report.json").read_text())
        assert report["query"]["kind"] == "image2d" and "path" not in report["query"]
        assert [(r["rank"], r["case_id"]) for r in report["rows"]] == [(r.rank, r.case_id) for r in results]
        assert report["rows"][0]["tags"] == {"site": "A"} and report["rows"][0]["export_folder"] == "case001"
        with pytest.raises(KeyError, match="no case with id 777"):
            export_bundle(lib, [777], tmp_path / "bad")

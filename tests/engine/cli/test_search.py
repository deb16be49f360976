"""``m3ret search``: by path and by case, filters, --json with source paths, errors and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli.main import main
from tests.engine.conftest import write_phantoms


@pytest.fixture()
def library(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    monkeypatch.setenv("M3RET_MODEL", str(tiny_model))
    write_phantoms(tmp_path / "files", 5)
    write_phantoms(tmp_path / "queries", 1, first_seed=50)
    lib = str(tmp_path / "lib")
    assert main(["index", str(tmp_path / "files"), "--library", lib, "--workers", "0", "--json"]) == 0
    return lib, tmp_path / "queries"


def test_search_by_path_json_names_sources(library: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    lib, queries = library
    capsys.readouterr()
    query = queries / "disc" / "disc_050.png"
    assert main(["search", str(query), "-k", "4", "--library", lib, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["query"]["path"] == str(query) and doc["query"]["kind"] == "image2d"
    assert [r["rank"] for r in doc["results"]] == [1, 2, 3, 4]
    assert all(Path(r["source_paths"][0]).parent.name == "disc" for r in doc["results"])
    assert all(0.0 < r["score"] <= 1.0 + 1e-6 for r in doc["results"])


def test_search_by_case_table(library: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    lib, _ = library
    capsys.readouterr()
    assert main(["search", "--case", "1", "-k", "3", "--library", lib]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("query:") and "rank" in lines[1] and len(lines) == 5


def test_filters(library: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    lib, _ = library
    capsys.readouterr()
    assert main(["search", "--case", "1", "-k", "20", "--kind", "video", "--library", lib, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"] == []
    assert main(["search", "--case", "1", "-k", "20", "--same-modality", "--library", lib, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 9


def test_errors(library: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lib, queries = library
    capsys.readouterr()
    assert main(["search", "--case", "999", "--library", lib]) == 1
    assert "no case with id 999" in capsys.readouterr().err
    assert main(["search", str(tmp_path / "absent.png"), "--library", lib]) == 2
    assert main(["search", "--library", lib]) == 2  # neither PATH nor --case
    assert main(["search", str(queries), "--case", "1", "--library", lib]) == 2  # both
    with pytest.raises(SystemExit) as exc:
        main(["search", "--case", "1", "--same-modality", "--cross-modal", "--library", lib])
    assert exc.value.code == 2


def test_unknown_query_modality_is_pointed_out(library: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    lib, queries = library
    capsys.readouterr()
    query = str(queries / "frame" / "frame_050.png")
    assert main(["search", query, "--same-modality", "--library", lib, "--json"]) == 0
    captured = capsys.readouterr()
    assert "--query-modality" in captured.err
    assert len(json.loads(captured.out)["results"]) == 10  # the library's PNGs are OT too
    assert main(["search", query, "--same-modality", "--query-modality", "XR", "--library", lib, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"] == []


def test_a_query_in_the_library_is_this_case_not_a_result(library: tuple[str, Path],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    lib, _ = library
    capsys.readouterr()
    indexed = Path(lib).parent / "files" / "disc" / "disc_001.png"
    assert main(["search", str(indexed), "-k", "3", "--library", lib, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (this_case,) = doc["query"]["this_case"]
    assert this_case not in [r["case_id"] for r in doc["results"]] and len(doc["results"]) == 3
    assert all(0.0 <= r["match"] <= 100.0 for r in doc["results"])  # readable score next to the raw cosine
    assert main(["search", str(indexed), "-k", "3", "--library", lib]) == 0
    out = capsys.readouterr().out
    assert f"this case: #{this_case} {indexed}" in out and "match" in out.splitlines()[2]


def test_an_empty_library_says_so(tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    write_phantoms(tmp_path / "query", 1)
    lib = str(tmp_path / "lib")
    assert main(["index", str(tmp_path / "empty"), "--library", lib, "--model", str(tiny_model)]) == 0
    capsys.readouterr()
    query = next((tmp_path / "query").rglob("*.png"))
    assert main(["search", str(query), "--library", lib, "--model", str(tiny_model)]) == 0
    assert "the library is empty; add cases with `m3ret index PATH`" in capsys.readouterr().out

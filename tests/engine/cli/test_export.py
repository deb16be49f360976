"""``m3ret export``: --case copies with a report, --query report (+ --copies), --keep-identifiers, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli.main import main
from tests.engine.cli.small_library import lib, run_json  # noqa: F401 (fixture)


def test_export_cases_and_query_report(lib: str, tmp_path: Path, tiny_model: Path,  # noqa: F811
                                       capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("M3RET_MODEL", str(tiny_model))
    labels = tmp_path / "files" / "labels.csv"
    labels.write_text("path,label\ndisc,round\nframe,square\n", encoding="utf-8")
    run_json(capsys, "labels", "import", str(labels), "--library", lib, "--json")
    out = tmp_path / "cases"
    doc = run_json(capsys, "export", "--case", "1", "2", "--out", str(out), "--library", lib, "--json")
    assert doc["deidentified"] is True and [c["folder"] for c in doc["cases"]] == ["case001", "case002"]
    assert sorted(p.name for p in out.iterdir()) == ["case001", "case002", "export.json", "report.csv",
                                                     "report.html", "report.json"]
    assert [p.name for p in (out / "case001").iterdir()] == ["image.png"]
    assert "disc_" not in (out / "report.html").read_text() and "files" not in (out / "report.csv").read_text()

    query = tmp_path / "files" / "disc" / "disc_000.png"
    report_dir = tmp_path / "report"
    doc = run_json(capsys, "export", "--query", str(query), "-k", "2", "--out", str(report_dir), "--library", lib,
                   "--json")  # the query is in the library: it is "this case", the results are the 2 other discs
    assert doc["cases"] == [] and doc["report"] == ["report.html", "report.csv", "report.json"]
    assert doc["labels_summary"].startswith("2 of 2 similar cases: round")
    rows = json.loads((report_dir / "report.json").read_text())["rows"]
    assert [r["rank"] for r in rows] == [1, 2] and all(r["label"] == "round" for r in rows)

    kept = tmp_path / "kept"
    assert main(["export", "--query", str(query), "-k", "2", "--copies", "--keep-identifiers", "--out", str(kept),
                 "--library", lib]) == 0
    assert "WITH IDENTIFIERS" in capsys.readouterr().out
    copied = sorted(p.name for p in kept.glob("case*/*"))
    assert len(copied) == 2 and all(name.startswith("disc_") for name in copied)
    assert "disc_" in (kept / "report.csv").read_text()


def test_export_errors(lib: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    out = str(tmp_path / "x")
    assert main(["export", "--out", out, "--library", lib]) == 2
    assert main(["export", "--case", "99", "--out", out, "--library", lib]) == 1
    assert "no case with id 99" in capsys.readouterr().err
    assert main(["export", "--query", str(tmp_path / "nope.png"), "--out", out, "--library", lib]) == 2
    (tmp_path / "files" / "disc" / "disc_000.png").unlink()
    record_id = next(r["id"] for r in run_json(capsys, "list", "--library", lib, "--json")
                     if r["path"].endswith("disc_000.png"))
    assert main(["export", "--case", str(record_id), "--out", out, "--library", lib]) == 1
    assert "disc_000.png: source file missing" in capsys.readouterr().err

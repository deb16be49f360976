"""``m3ret labels``: import a CSV (unknown rows reported), set and delete a tag, show; errors and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli.main import main
from tests.engine.cli.small_library import lib, run_json  # noqa: F401 (fixture)


def test_import_set_show(lib: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    csv_file = tmp_path / "files" / "labels.csv"
    csv_file.write_text("path,label,site\ndisc/disc_000.png,round,A\nframe/frame_001.png,square,B\n"
                        "missing.png,round,A\n", encoding="utf-8")
    doc = run_json(capsys, "labels", "import", str(csv_file), "--library", lib, "--json")
    assert doc["rows"] == 3 and doc["cases_labelled"] == 2 and len(doc["unknown"]) == 1
    assert main(["labels", "import", str(csv_file), "--library", lib]) == 0
    out = capsys.readouterr().out
    assert "2 cases labelled, 1 unknown" in out and "missing.png" in out
    shown = run_json(capsys, "labels", "show", "--library", lib, "--json")
    assert sorted(v["label"] for v in shown.values()) == ["round", "square"]
    case_id = next(k for k, v in shown.items() if v["label"] == "round")
    doc = run_json(capsys, "labels", "set", case_id, "label=oval", "site=", "--library", lib, "--json")
    assert doc == {case_id: {"label": "oval"}}


def test_errors_and_exit_codes(lib: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["labels", "import", str(tmp_path / "nope.csv"), "--library", lib]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("name\nx\n", encoding="utf-8")
    assert main(["labels", "import", str(bad), "--library", lib]) == 1
    assert "bad.csv: needs a 'path' or 'case_id' column" in capsys.readouterr().err
    assert main(["labels", "set", "999", "label=x", "--library", lib]) == 1
    assert "no case with id 999" in capsys.readouterr().err
    assert main(["labels", "set", "1", "novalue", "--library", lib]) == 2
    assert main(["labels", "--library", lib]) == 2

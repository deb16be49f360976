"""engine.demo (``make demo``): index a manifest's test split, search with a held-back file, print the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.demo import main
from tests.engine.conftest import write_phantoms


def test_demo_on_a_manifest_folder(tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    files = write_phantoms(data / "xray", 4)
    lines = ["path,modality,dataset,label,split,patient,source,license"]
    lines += [f"{p.relative_to(data).as_posix()},xray,phantoms,{family},test,p{i},synthetic,CC0"
              for i, (p, family) in enumerate(sorted(files.items()))]
    (data / "manifest.csv").write_text("\n".join(lines) + "\n")
    args = ["--data", str(data), "--model", str(tiny_model), "--workers", "0", "-k", "3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "7 added" in out and "library holds 7 cases" in out  # 8 files, one held back
    assert "query (held back, not indexed)" in out and "3/3 share the query's label (xray/disc)" in out
    assert main(args) == 0  # the second run only checks what changed
    assert "7 unchanged" in capsys.readouterr().out


def test_demo_on_a_plain_folder(tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_phantoms(tmp_path / "data", 2)
    assert main(["--data", str(tmp_path / "data"), "--model", str(tiny_model), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "4 added" in out and "this case: #" in out  # the query is in the library: named, not a result
    assert "(no results" not in out and " 1 " in out.split("rank", 1)[1]


def test_demo_removes_its_temporary_library(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import tempfile

    monkeypatch.delenv("M3RET_HOME", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    write_phantoms(tmp_path / "data", 1)
    assert main(["--data", str(tmp_path / "data"), "--model", str(tiny_model), "--workers", "0"]) == 0
    assert "temporary library" in capsys.readouterr().out and list((tmp_path / "tmp").iterdir()) == []


def test_demo_without_model_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_phantoms(tmp_path / "data", 1)
    assert main(["--data", str(tmp_path / "data"), "--model", str(tmp_path / "absent.onnx")]) == 1
    assert "model not found" in capsys.readouterr().err

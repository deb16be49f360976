"""``m3ret index``: incremental runs, --prune, --modality, --reembed, --json, failures, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.main import main
from tests.engine.conftest import write_phantoms

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture()
def files(tmp_path: Path) -> Path:
    write_phantoms(tmp_path / "files", 3)
    return tmp_path / "files"


def _index_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["index", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_index_then_reindex(files: Path, tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lib = ["--library", str(tmp_path / "lib"), "--model", str(tiny_model), "--workers", "0"]
    first = _index_json(capsys, str(files), *lib)
    assert (first["added"], first["failed"], first["cases_in_library"]) == (6, 0, 6)
    again = _index_json(capsys, str(files), *lib)
    assert (again["added"], again["unchanged"]) == (0, 6)
    next(files.glob("disc/*.png")).unlink()
    pruned = _index_json(capsys, str(files), "--prune", *lib)
    assert pruned["pruned"] == 1 and pruned["cases_in_library"] == 5


def test_failures_listed_in_the_text_report(files: Path, tmp_path: Path, tiny_model: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (files / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    code = main(["index", str(files), "--library", str(tmp_path / "lib"), "--model", str(tiny_model),
                 "--workers", "0"])
    out = capsys.readouterr().out
    assert code == 0
    assert "1 file(s) could not be indexed" in out and "broken.png" in out and "6 added" in out


def test_modality_option_and_reembed(files: Path, tmp_path: Path, tiny_model: Path, other_model: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    lib = ["--library", str(tmp_path / "lib"), "--workers", "0"]
    _index_json(capsys, str(files), "--modality", "xr", "--model", str(tiny_model), *lib)
    assert main(["list", "--library", str(tmp_path / "lib"), "--json"]) == 0
    assert {c["modality"] for c in json.loads(capsys.readouterr().out)} == {"XR"}
    assert main(["index", str(files), "--model", str(other_model), *lib]) == 1
    assert "--reembed" in capsys.readouterr().err
    redone = _index_json(capsys, "--reembed", "--model", str(other_model), *lib)
    assert redone["updated"] == 6


def test_usage_errors_exit_2(tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", str(tmp_path / "absent"), "--library", str(tmp_path / "lib")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["index", "--library", str(tmp_path / "lib")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["index", "--workers", "many"])
    assert exc.value.code == 2


def test_missing_model_is_a_runtime_error(files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["index", str(files), "--library", str(tmp_path / "lib"), "--model", str(tmp_path / "no.onnx")])
    assert code == 1 and "model file not found" in capsys.readouterr().err


def test_console_entry_point(files: Path, tmp_path: Path, tiny_model: Path) -> None:
    env = {**os.environ, "M3RET_MODEL": str(tiny_model), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "engine.cli", "index", str(files), "--library",
                           str(tmp_path / "lib"), "--workers", "1"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "6 added" in done.stdout


def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(tmp_path: Path, tiny_model: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import signal
    import sqlite3
    import textwrap
    import time

    write_phantoms(tmp_path / "many", 8)
    library = tmp_path / "lib"
    script = textwrap.dedent(f"""
        import sys, time
        import engine.indexer as indexer
        from engine.cli.main import main
        slow = indexer.prepare_unit
        def prepare(*args, **kw):
            time.sleep(0.15)
            return slow(*args, **kw)
        indexer.prepare_unit = prepare
        sys.exit(main(["index", {str(tmp_path / "many")!r}, "--library", {str(library)!r}, "--model",
                       {str(tiny_model)!r}, "--workers", "0", "--batch-size", "2"]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline, committed = time.monotonic() + 60, 0
    while time.monotonic() < deadline and proc.poll() is None and committed < 4:
        try:
            with sqlite3.connect(library / "catalog.sqlite", timeout=1) as conn:
                committed = conn.execute("SELECT count(*) FROM cases").fetchone()[0]
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "cancelled" in out
    rerun = _index_json(capsys, str(tmp_path / "many"), "--library", str(library), "--model", str(tiny_model),
                        "--workers", "0")
    assert rerun["unchanged"] >= 4 and rerun["unchanged"] + rerun["added"] == 16
    assert rerun["cases_in_library"] == 16


def test_progress_bar_follows_the_indexer(files: Path, tmp_path: Path, tiny_model: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli.index import ProgressBar
    from engine.indexer import index_paths
    from engine.library import Library

    with Library.open(tmp_path / "lib", model_path=tiny_model) as library, ProgressBar(True) as bar:
        index_paths(library, [files], progress=bar.update, workers=0)
    err = capsys.readouterr().err
    assert "discovering" in err and "indexing" in err and "6/6" in err
    assert "saving" not in err and "done:" not in err


def test_a_folder_of_text_files_says_what_was_skipped(tmp_path: Path, tiny_model: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(3):
        (notes / f"note{i}.txt").write_text("not an image")
    (notes / "table.csv").write_text("a,b")
    lib = str(tmp_path / "lib")
    assert main(["index", str(notes), "--library", lib, "--model", str(tiny_model)]) == 0
    out = capsys.readouterr().out
    assert "4 file(s) skipped: 3 not a medical image (.txt), 1 not a medical image (.csv)" in out
    assert main(["index", str(notes), "--library", lib, "--model", str(tiny_model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == {"not a medical image (.txt)": 3,
                                                              "not a medical image (.csv)": 1}

"""``m3ret inspect``: table and JSON output, failures listed with exit 0, usage errors exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from engine.cli import main
from engine.cli.main import SUBCOMMANDS, build_parser


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "cases"
    (root / "sub").mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.zeros((5, 6, 7), np.int16), np.diag([1.0, 2.0, 3.0, 1.0])), root / "vol.nii.gz")
    assert cv2.imwrite(str(root / "sub" / "still.png"), np.zeros((10, 20), np.uint8))
    (root / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    (root / "notes.txt").write_text("ignored")
    return root


def test_json_lists_cases_and_failures(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    cases = {Path(c["path"]).name: c for c in doc["cases"]}
    assert set(cases) == {"vol.nii.gz", "still.png"}
    volume = cases["vol.nii.gz"]
    assert (volume["kind"], volume["modality"], volume["shape"], volume["files"]) == ("volume", "OT", [7, 6, 5], 1)
    assert volume["spacing"] == [3.0, 2.0, 1.0]
    assert cases["still.png"]["kind"] == "image2d" and cases["still.png"]["shape"] == [10, 20]
    [failure] = doc["failures"]
    assert Path(failure["path"]).name == "broken.png" and failure["reason"]
    assert doc["summary"]["cases"] == 2 and doc["summary"]["failures"] == 1
    assert "scanning" not in captured.err  # no progress bar with --json


def test_table_output(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(folder), "--library", str(folder / "lib")]) == 0
    out = capsys.readouterr().out
    assert "volume" in out and "7x6x5" in out and "vol.nii.gz" in out
    assert "broken.png" in out and "1 failure(s)" in out
    assert "2 case(s)" in out


def test_missing_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path / "absent")]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect"])
    assert exit_info.value.code == 2


def test_every_subcommand_takes_library_and_registers_from_its_module() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert len(subparsers.choices) == len(SUBCOMMANDS)
    for name, sub in subparsers.choices.items():
        nested = [a for a in sub._actions if a.dest == "action" and getattr(a, "choices", None)]
        if nested:  # a command with actions (``pacs``): those that touch a library take --library
            assert any("--library" in action._option_string_actions for action in nested[0].choices.values()), name
        else:
            assert "--library" in sub._option_string_actions, name


def test_python_dash_m_runs(folder: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "inspect", str(folder / "vol.nii.gz"), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cases"][0]["kind"] == "volume"


def test_shared_data_formats(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(shared_data / "formats"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    kinds = {c["kind"] for c in doc["cases"]}
    assert kinds == {"volume"}
    assert doc["summary"]["cases"] >= 21

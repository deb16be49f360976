"""``m3ret listen`` as a process: Orthanc pushes a study, it is indexed and searchable; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.cli.main import main
from tests.engine.pacs.orthanc_fixtures import OUR_AE, ct_series, listener_port, orthanc  # noqa: F401
from tests.engine.pacs.orthanc_server import ORTHANC_AE, Orthanc

REPO_ROOT = Path(__file__).resolve().parents[3]


def _read_line_with(process: subprocess.Popen[str], text: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()  # type: ignore[union-attr]
        if not line and process.poll() is not None:
            errors = process.stderr.read()  # type: ignore[union-attr]
            raise AssertionError(f"listener exited ({process.returncode}): {errors}")
        if text in line:
            return line
    raise AssertionError(f"no line with {text!r} within {timeout} s")


def test_listen_receives_and_indexes(orthanc: Orthanc, ct_series: list[Path], listener_port: int,  # noqa: F811
                                     tmp_path: Path, tiny_model: Path, capsys) -> None:  # noqa: ANN001
    library = tmp_path / "lib"
    env = {**os.environ, "M3RET_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "listen", "--library", str(library), "--model", str(tiny_model),
         "--port", str(listener_port), "--bind", "127.0.0.1", "--allow", ORTHANC_AE, "--settle", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT,
    )
    try:
        assert f"listening as {OUR_AE} on 127.0.0.1:{listener_port}" in _read_line_with(process, "listening")
        study = orthanc.upload(ct_series)[0]["ParentStudy"]
        assert orthanc.store_to("m3ret", [study])["FailedInstancesCount"] == 0
        assert "1 added" in _read_line_with(process, "indexed 1 series")
        assert main(["search", str(ct_series[0].parent), "--library", str(library), "--model", str(tiny_model),
                     "-k", "1", "--json"]) == 0
        results = json.loads(capsys.readouterr().out)
        assert len(results["results"]) == 1 and results["results"][0]["modality"] == "CT"
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"stopped: {len(ct_series)} instance(s) received, 0 refused" in out


def test_listen_without_allowed_callers_is_an_error(tmp_path: Path, tiny_model: Path, capsys) -> None:  # noqa: ANN001
    import pytest

    pytest.importorskip("pynetdicom")
    assert main(["listen", "--library", str(tmp_path / "lib"), "--model", str(tiny_model), "--port", "0",
                 "--settings", str(tmp_path / "none.ini")]) == 1
    assert "no calling AE title is allowed" in capsys.readouterr().err

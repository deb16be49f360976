"""A small indexed library (6 phantom PNGs as XR + 1 unreadable file) for the library subcommands' tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli.main import main
from tests.engine.conftest import write_phantoms


@pytest.fixture()
def lib(tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> str:
    write_phantoms(tmp_path / "files", 3)
    (tmp_path / "files" / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    library = str(tmp_path / "lib")
    assert main(["index", str(tmp_path / "files"), "--library", library, "--model", str(tiny_model),
                 "--workers", "0", "--modality", "XR", "--json"]) == 0
    capsys.readouterr()
    return library


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)

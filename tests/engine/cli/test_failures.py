"""``m3ret failures``: unreadable files with their reasons."""

from __future__ import annotations


import pytest

from engine.cli.main import main
from tests.engine.cli.small_library import lib, run_json  # noqa: F401 (fixture)


def test_failures(lib: str, capsys: pytest.CaptureFixture[str]) -> None:
    failures = run_json(capsys, "failures", "--library", lib, "--json")
    assert len(failures) == 1 and failures[0]["path"].endswith("junk.png") and failures[0]["reason"]
    assert main(["failures", "--library", lib]) == 0
    assert "junk.png" in capsys.readouterr().out

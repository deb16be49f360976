"""``m3ret remove ID...``: catalog and index forget the cases; unknown ids exit 1."""

from __future__ import annotations


import pytest

from engine.cli.main import main
from tests.engine.cli.small_library import lib, run_json  # noqa: F401 (fixture)


def test_remove(lib: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["remove", "1", "2", "--library", lib]) == 0
    assert "removed 2" in capsys.readouterr().out
    assert len(run_json(capsys, "list", "--library", lib, "--json")) == 4
    assert main(["remove", "1", "--library", lib]) == 1  # already gone

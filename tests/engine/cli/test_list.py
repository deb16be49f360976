"""``m3ret list``: filters, paging, text and JSON output."""

from __future__ import annotations


import pytest

from engine.cli.main import main
from tests.engine.cli.small_library import lib, run_json  # noqa: F401 (fixture)


def test_list(lib: str, capsys: pytest.CaptureFixture[str]) -> None:
    cases = run_json(capsys, "list", "--library", lib, "--json")
    assert len(cases) == 6 and {c["modality"] for c in cases} == {"XR"}
    assert len(run_json(capsys, "list", "--text", "disc_", "--library", lib, "--json")) == 3
    assert len(run_json(capsys, "list", "--limit", "2", "--library", lib, "--json")) == 2
    assert main(["list", "--library", lib]) == 0
    assert capsys.readouterr().out.strip().endswith("6 case(s)")

"""Benchmark runner: finds modules with main(argv) and runs each in its own process with --quick passed on."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import run_all


def test_discover_keeps_modules_with_a_top_level_main(tmp_path: Path) -> None:
    (tmp_path / "with_main.py").write_text("def main(argv=None):\n    return 0\n")
    (tmp_path / "nested_main.py").write_text("class A:\n    def main(self):\n        pass\n")
    (tmp_path / "helpers.py").write_text("X = 1\n")
    (tmp_path / "_private.py").write_text("def main(argv=None):\n    return 0\n")
    (tmp_path / "run_all.py").write_text("def main(argv=None):\n    return 0\n")
    (tmp_path / "broken.py").write_text("def main(:\n")
    assert run_all.discover(tmp_path) == ["with_main"]


def test_discover_finds_the_vector_search_benchmark() -> None:
    assert "vector_search" in run_all.discover()


def test_run_all_passes_quick_and_reports_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_run_one(name: str, argv: list[str]) -> tuple[int, float]:
        calls.append((name, argv))
        return (1 if name == "bad" else 0), 0.0

    monkeypatch.setattr(run_all, "discover", lambda: ["good", "bad"])
    monkeypatch.setattr(run_all, "run_one", fake_run_one)
    assert run_all.main(["--quick"]) == 1
    assert calls == [("good", ["--quick"]), ("bad", ["--quick"])]
    calls.clear()
    assert run_all.main(["--only", "good"]) == 0 and calls == [("good", [])]
    assert run_all.main(["--only", "missing"]) == 2

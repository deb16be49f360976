"""``m3ret`` itself: --version, unknown options shown with the subcommand's usage, a closed pipe ends quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import __version__
from engine.cli.main import BROKEN_PIPE, main
from tests.engine.cli.small_library import lib  # noqa: F401 (fixture)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"m3ret {__version__}"


def test_unknown_option_after_a_subcommand_shows_its_usage_and_the_closest_option(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    query = tmp_path / "query.png"
    query.write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "--top-k", "5", str(query), "--library", str(tmp_path / "lib")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("usage: m3ret search") and "--top-k (did you mean --top?)" in err
    assert "5: no such file" not in err  # the value was not taken as the query path and run


def test_list_into_a_closed_pipe_ends_quietly(lib: str) -> None:  # noqa: F811
    """`m3ret list | head -0`: no 'Broken pipe' error, the exit status of a tool stopped by SIGPIPE."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "list", "--library", lib], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == BROKEN_PIPE
    assert "Broken pipe" not in err and "BrokenPipe" not in err and "Traceback" not in err, err

"""engine.io.decoder_log: FFmpeg's warnings about a damaged video go to the log, not onto the terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.io.decoder_log import decoder_messages_to_log

REPO = Path(__file__).resolve().parents[3]


def test_native_stderr_is_logged_not_printed(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
                                             ) -> None:
    with caplog.at_level("INFO", logger="engine.io.decoder_log"), decoder_messages_to_log("clip.mp4"):
        os.write(2, b"[h264 @ 0x1] Invalid NAL unit size\n")  # what native code does
    assert "Invalid NAL" not in capfd.readouterr().err
    assert "clip.mp4: decoder: [h264 @ 0x1] Invalid NAL unit size" in caplog.text
    os.write(2, b"after\n")  # the descriptor is back
    assert capfd.readouterr().err == "after\n"


def test_truncated_video_is_read_quietly(tmp_path: Path, shared_data: Path) -> None:
    """`m3ret inspect` on a cut-off mp4: the reader's verdict on stdout, no FFmpeg lines on stderr."""
    source = next(shared_data.rglob("*.mp4"), None)
    if source is None:
        pytest.skip("no mp4 in the shared data")
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(source.read_bytes()[:20_000])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "inspect", str(truncated)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "cut.mp4" in proc.stdout
    assert " @ 0x" not in proc.stderr and "partial file" not in proc.stderr, proc.stderr
    verbose = subprocess.run([sys.executable, "-m", "engine.cli", "-v", "inspect", str(truncated)], env=env,
                             capture_output=True, text=True, timeout=120)
    assert "decoder:" in verbose.stderr  # still there for who asks (and in the app's log)

"""Decoder chatter (FFmpeg inside OpenCV) goes to the log, not onto the terminal.

FFmpeg prints its warnings (``[h264 @ 0x...] Invalid NAL unit size``, ``partial file``) straight to the process's
standard error, past Python. ``decoder_messages_to_log`` points file descriptor 2 at a temporary file while a
video is decoded and logs each captured line at INFO, naming the file (``m3ret -v``, the app's log). Captures are
serialised by a lock (one process-wide descriptor); what another thread writes to stderr meanwhile is logged too,
never lost. The reader's own verdict (a ``ReadError`` with a reason) is unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)
_lock = threading.RLock()
_depth = 0


@contextlib.contextmanager
def decoder_messages_to_log(path: Path | str) -> Iterator[None]:
    """Capture what native code writes to stderr inside the block and log it as ``<path>: decoder: <line>``."""
    global _depth
    with _lock:
        if _depth:  # nested: the outer capture already holds the descriptor
            _depth += 1
            try:
                yield
            finally:
                _depth -= 1
            return
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all (a GUI bundle): nothing to capture
            yield
            return
        with tempfile.TemporaryFile() as captured:
            _flush_python_stderr()
            os.dup2(captured.fileno(), 2)
            _depth = 1
            try:
                yield
            finally:
                _depth = 0
                _flush_python_stderr()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                for line in captured.read().decode("utf-8", errors="replace").splitlines():
                    if line.strip():
                        log.info("%s: decoder: %s", path, line.strip())


def _flush_python_stderr() -> None:
    with contextlib.suppress(Exception):
        sys.stderr.flush()

"""Where the ``m3ret`` command's log records go: everything to a log file, little to the terminal.

The terminal shows progress, the summary and one line per failure (printed by the subcommands themselves); the
log file ``m3ret.log`` under the user log folder (``engine.config.user_log_dir``) receives every record at INFO
and above (DEBUG with ``-vv``), Python warnings included (``logging.captureWarnings``: pydicom's and nibabel's
``UserWarning``s about malformed files), so a run over broken archives does not flood the terminal. On the
terminal: warnings and errors of m3ret's own modules only (OpenCV's own log lines silenced); ``-v`` adds
everything at INFO, ``-vv`` DEBUG.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

from engine.config import user_log_dir

LOG_FILE = "m3ret.log"
OWN_LOGGERS = ("engine", "app", "__main__")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _OwnRecords(logging.Filter):
    """Passes records of m3ret's own loggers (third-party chatter about a bad file goes to the log file)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] in OWN_LOGGERS


def configure_cli_logging(verbosity: int = 0) -> None:
    """Terminal: own warnings (``verbosity`` 0), all INFO (1) or DEBUG (2+); log file: INFO or DEBUG, all."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if verbosity == 0:
        terminal.setLevel(logging.WARNING)
        terminal.addFilter(_OwnRecords())
    root.addHandler(terminal)
    try:
        folder = user_log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            folder / LOG_FILE, maxBytes=10 * 2**20, backupCount=2, encoding="utf-8", errors="backslashreplace"
        )
    except OSError as exc:  # a read-only home: the terminal is all there is
        root.warning("cannot write the log file (%s)", exc)
    else:
        file_handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(file_handler)
    logging.captureWarnings(True)  # warnings.warn(...) -> the "py.warnings" logger -> the log file only
    if verbosity == 0:  # OpenCV's own "[ WARN:0@...] TIFFReadRGBAStrip..." lines (reader processes read the
        os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")  # variable; this process is told directly)
        cv2 = sys.modules.get("cv2")
        if cv2 is not None:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

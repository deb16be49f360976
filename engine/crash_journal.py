"""Reader crashes made attributable: a journal of the unit being read, and a quarantine of units that crashed.

A native decoder abort (``SIGABRT`` in gdcm, ``SIGSEGV`` in a codec) or the OOM killer ends the process that
reads a unit without any Python ``except`` running. So, before the indexer reads a unit in its own process,
``CrashJournal.reading`` writes the unit to ``<library>/reading.journal``, and empties it afterwards. A run that
finds the journal non-empty knows which unit the last one died on (``recover``), but not whether the unit killed
it or the user did (kill -9, power off): the indexer reads that *suspect* unit once more in a separate process.
If that process dies too (or overruns its time budget) the unit is quarantined in ``<library>/quarantine.json``
with each file's size and mtime. Quarantined units are not read again (the indexer records them as failures,
"crashed the reader ...") until one of their files changes. Units that killed a reader
*process* twice, or that a reader process hung on, are quarantined the same way (``add``). A run therefore never
dies twice on the same file.

File names that are not UTF-8 (surrogate escapes) survive the JSON round trip (``\\udcXX`` escapes).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.io.case import safe_text

log = logging.getLogger(__name__)

JOURNAL_FILE = "reading.journal"
QUARANTINE_FILE = "quarantine.json"
CRASH_REASON = "crashed the reader (native decoder abort or out of memory); skipped until the file changes"
HANG_REASON = "reader did not finish within its time budget (process killed); skipped until the file changes"


def _file_stats(files: tuple[Path, ...] | list[Path]) -> dict[str, list[float]]:
    stats: dict[str, list[float]] = {}
    for file in files:
        try:
            st = os.stat(file)
            stats[str(file)] = [st.st_size, st.st_mtime_ns]
        except OSError:
            stats[str(file)] = [-1, -1]
    return stats


class CrashJournal:
    """The journal and quarantine of one library folder (used only by the process holding the writer lock)."""

    def __init__(self, library_dir: Path) -> None:
        self.journal_path = Path(library_dir) / JOURNAL_FILE
        self.quarantine_path = Path(library_dir) / QUARANTINE_FILE
        self._quarantine: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.quarantine_path.read_text(encoding="ascii"))
            return dict(data.get("units", {}))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("%s unreadable (%s); starting an empty quarantine", self.quarantine_path, exc)
            return {}

    def _save(self) -> None:
        tmp = self.quarantine_path.with_name(self.quarantine_path.name + ".tmp")
        tmp.write_text(json.dumps({"units": self._quarantine}, indent=1, sort_keys=True), encoding="ascii")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.quarantine_path)

    def recover(self) -> list[str]:
        """The key of the unit the last run died while reading (a suspect), if any; the journal is emptied."""
        try:
            text = self.journal_path.read_text(encoding="ascii")
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("cannot read %s (%s)", self.journal_path, exc)
            return []
        keys: list[str] = []
        if text.strip():
            try:
                entry = json.loads(text)
                key, files = str(entry["key"]), [Path(f) for f in entry["files"]]
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s unreadable (%s); ignored", self.journal_path, exc)
            else:
                log.warning("the last run died while reading %s (%d file(s)); it is read in a separate process now",
                            safe_text(key), len(files))
                keys.append(key)
        self.journal_path.unlink(missing_ok=True)
        return keys

    def add(self, key: str, files: tuple[Path, ...] | list[Path], reason: str) -> None:
        """Quarantine a unit (until one of its files changes)."""
        self._quarantine[key] = {"reason": reason, "files": _file_stats(files)}
        self._save()

    def quarantined(self, key: str, files: tuple[Path, ...]) -> str | None:
        """The reason the unit is quarantined, or None (also when its files changed: it is released then)."""
        entry = self._quarantine.get(key)
        if entry is None:
            return None
        if entry.get("files") == _file_stats(files):
            return str(entry.get("reason") or CRASH_REASON)
        del self._quarantine[key]
        self._save()
        return None

    @contextmanager
    def reading(self, key: str, files: tuple[Path, ...]) -> Iterator[None]:
        """Journal the unit for the duration of the block (empty again when it ends, however it ends in Python)."""
        text = json.dumps({"key": key, "files": [str(f) for f in files], "pid": os.getpid()})
        with open(self.journal_path, "w", encoding="ascii") as f:
            f.write(text)
        try:
            yield
        finally:
            with open(self.journal_path, "w", encoding="ascii"):
                pass

"""engine.crash_journal: the unit being read survives a crash in the journal; quarantine until a file changes."""

from __future__ import annotations

import os
from pathlib import Path

from engine.crash_journal import CRASH_REASON, CrashJournal


def test_a_unit_left_in_the_journal_is_a_suspect_once(tmp_path: Path) -> None:
    file = tmp_path / "a.dcm"
    file.write_bytes(b"x" * 10)
    journal = CrashJournal(tmp_path)
    context = journal.reading("key-a", (file,))
    context.__enter__()  # the process "dies" here: the block never ends
    assert CrashJournal(tmp_path).recover() == ["key-a"]
    assert CrashJournal(tmp_path).recover() == []  # emptied by the recovery


def test_a_unit_read_to_the_end_leaves_no_suspect(tmp_path: Path) -> None:
    journal = CrashJournal(tmp_path)
    try:
        with journal.reading("key-b", (tmp_path / "b.png",)):
            raise ValueError("a Python error is not a crash")
    except ValueError:
        pass
    assert CrashJournal(tmp_path).recover() == []


def test_quarantine_holds_until_a_file_changes_and_keeps_non_utf8_names(tmp_path: Path) -> None:
    file = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"bad-\xff\xfe.dcm")))
    file.write_bytes(b"x" * 10)
    CrashJournal(tmp_path).add(str(file), (file,), CRASH_REASON)
    reopened = CrashJournal(tmp_path)
    assert reopened.quarantined(str(file), (file,)) == CRASH_REASON
    assert reopened.quarantined("other", (file,)) is None
    file.write_bytes(b"y" * 11)
    assert reopened.quarantined(str(file), (file,)) is None
    assert CrashJournal(tmp_path).quarantined(str(file), (file,)) is None

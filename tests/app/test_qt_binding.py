"""The Qt binding must not corrupt reference counts: PySide6 6.12.0 on Python 3.11 drops a reference to None
on every void method call (``QLabel.setText``, ``QTimer.start``, ``processEvents``...) and the app then dies
with "none_dealloc" after a few thousand calls. pyproject excludes that version; this test catches a relapse."""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel


def test_void_methods_keep_none_alive(qapp) -> None:  # noqa: ANN001
    label, timer = QLabel(), QTimer()
    before = sys.getrefcount(None)
    for _ in range(500):
        label.setText("x")
        timer.start(1000)
        qapp.processEvents()
    timer.stop()
    assert sys.getrefcount(None) >= before - 50

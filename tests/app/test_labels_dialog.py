"""The labels dialog writes only what changed and deletes what was removed."""

from __future__ import annotations

from app.labels_dialog import LabelsDialog


def test_values_are_the_changes(qtbot) -> None:  # noqa: ANN001
    dialog = LabelsDialog("Case 1", {"label": "normal", "site": "A", "reader": "x"})
    qtbot.addWidget(dialog)
    assert dialog.label_edit.text() == "normal" and dialog.tags_edit.toPlainText() == "reader=x\nsite=A"
    assert dialog.values() == {}
    dialog.label_edit.setText("pneumonia")
    dialog.tags_edit.setPlainText("site=B\nnot a pair\nnew = 1")
    assert dialog.values() == {"label": "pneumonia", "site": "B", "new": "1", "reader": None}
    dialog.label_edit.setText("  ")
    assert dialog.values()["label"] is None

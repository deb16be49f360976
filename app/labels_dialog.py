"""Edit one case's labels: the label, and key=value tags one per line (the library's own, not a diagnosis)."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QPlainTextEdit, QWidget

LABEL_KEY = "label"  # engine.labels.LABEL_KEY


class LabelsDialog(QDialog):
    """``values()`` gives every key to write: new or changed values, and ``None`` for keys that were removed."""

    def __init__(self, case_title: str, labels: dict[str, str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Labels")
        self._before = dict(labels)
        self.label_edit = QLineEdit(labels.get(LABEL_KEY, ""), self)
        self.label_edit.setPlaceholderText("e.g. pneumonia")
        self.tags_edit = QPlainTextEdit(self)
        self.tags_edit.setPlaceholderText("key=value, one per line (e.g. site=A)")
        self.tags_edit.setPlainText("\n".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != LABEL_KEY))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow(QLabel(case_title, self))
        form.addRow("Label", self.label_edit)
        form.addRow("Tags", self.tags_edit)
        form.addRow(QLabel("The library's own labels: shown as decision support, not a diagnosis.", self))
        form.addRow(buttons)

    def values(self) -> dict[str, str | None]:
        """Keys to set (value) or delete (None) so the case ends up with what the dialog shows."""
        wanted: dict[str, str] = {}
        if self.label_edit.text().strip():
            wanted[LABEL_KEY] = self.label_edit.text().strip()
        for line in self.tags_edit.toPlainText().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and value.strip():
                wanted[key.strip()] = value.strip()
        out: dict[str, str | None] = {k: None for k in self._before if k not in wanted}
        out.update({k: v for k, v in wanted.items() if self._before.get(k) != v})
        return out

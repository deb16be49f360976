"""About box: the app version and the model card of the model in use (ONNX metadata ``m3ret.card``), shown as
readable tables (nested entries as nested tables, lists as bullets), never as raw JSON."""

from __future__ import annotations

import html
import json
import logging
from importlib import metadata as package_metadata
from pathlib import Path

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from engine.model_format import (
    META_ARCH,
    META_CARD,
    META_EMBED_DIM,
    META_MODALITY_HEAD,
    META_MODEL_ID,
    META_PREPROCESS,
)
from app.workers import create_worker

log = logging.getLogger(__name__)

PAPER = ("M3Ret: Unleashing Zero-shot Multimodal Medical Image Retrieval via Self-Supervision "
         "(Liu et al., 2025)")


def app_version() -> str:
    try:
        return package_metadata.version("m3ret")
    except package_metadata.PackageNotFoundError:
        return "development"


def read_model_metadata(model_path: Path) -> dict[str, str]:
    """The ONNX model's metadata properties (``engine.model_format`` keys); raises on an unreadable file."""
    import onnxruntime as ort  # an engine dependency; loaded here only when the About box asks

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def model_card(meta: dict[str, str]) -> dict[str, object]:
    """The parsed ``m3ret.card`` JSON ({} when absent; the raw text under 'card' when it is not JSON)."""
    raw = meta.get(META_CARD, "")
    if not raw:
        return {}
    try:
        card = json.loads(raw)
    except ValueError:
        return {"card": raw}
    return card if isinstance(card, dict) else {"card": card}


def card_html(meta: dict[str, str], model_path: Path | None) -> str:
    """The About text as HTML: app, model id/arch/dimension/preprocessing, then every model card entry."""
    rows = [
        ("Model id", meta.get(META_MODEL_ID, "?")),
        ("Architecture", meta.get(META_ARCH, "?")),
        ("Embedding size", meta.get(META_EMBED_DIM, "?")),
        ("Preprocessing", _parsed(meta.get(META_PREPROCESS, "?"))),
        ("Model file", str(model_path) if model_path else "?"),
    ]
    head = _parsed(meta.get(META_MODALITY_HEAD, ""))
    if isinstance(head, dict):
        info = head.get("info") or {}
        rows.append(("Modality recognition", {
            "modalities": ", ".join(head.get("classes", [])),
            "shown as predicted at confidence": head.get("min_confidence"),
            "test accuracy": info.get("test_accuracy", "not measured"),
        }))
    card = model_card(meta)
    parts = [_header(), "<h3>Model in use</h3>", _table(rows), "<h3>Model card</h3>"]
    parts.append(_table(list(card.items())) if card else "<p>This model carries no card.</p>")
    return "\n".join(parts)


class AboutDialog(QDialog):
    """Shows ``card_html`` for ``model_path`` (metadata read in a worker)."""

    def __init__(self, model_path: Path | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About M3Ret")
        self.resize(620, 520)
        self.model_path = model_path
        self.text = QTextBrowser(self)
        self.text.setOpenExternalLinks(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.metadata: dict[str, str] | None = None
        if model_path is None or not Path(model_path).is_file():
            self.text.setHtml(_header() + f"<p>No model file found{f' at {html.escape(str(model_path))}' if model_path else ''}.</p>")
            return
        self.text.setHtml(_header() + "<p>Reading the model card…</p>")
        self.worker = create_worker(read_model_metadata, Path(model_path),
                                    _connect={"returned": self._show, "errored": self._failed})

    def _show(self, meta: dict[str, str]) -> None:
        self.metadata = meta
        self.text.setHtml(card_html(meta, self.model_path))

    def _failed(self, exc: Exception) -> None:
        self.text.setHtml(_header() + f"<p>Cannot read {html.escape(str(self.model_path))}: "
                          f"{html.escape(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}</p>")


def _header() -> str:
    return (f"<h2>M3Ret Desktop {html.escape(app_version())}</h2>"
            "<p>Offline retrieval of similar medical cases (2D images, 3D volumes, videos) with one "
            f"self-supervised encoder, after <i>{html.escape(PAPER)}</i>. Patient data never leaves this "
            "machine.</p>")


def _table(rows: list[tuple[str, object]]) -> str:
    body = "".join(f"<tr><td valign='top'><b>{html.escape(_label(k))}</b></td><td>{_value_html(v)}</td></tr>"
                   for k, v in rows)
    return f"<table cellspacing='4'>{body}</table>"


def _label(key: object) -> str:
    """``wall_time_s`` -> "Wall time s"; keys that are already readable stay as they are."""
    text = str(key).replace("_", " ")
    return text[:1].upper() + text[1:]


def _parsed(text: str) -> object:
    """JSON text as its value (a dict shows as a table), other text unchanged."""
    try:
        return json.loads(text) if text[:1] in "{[" else text
    except ValueError:
        return text


def _value_html(value: object) -> str:
    """A card value as HTML: nested tables for mappings, bullets for lists of text, numbers rounded."""
    if isinstance(value, dict):
        return _table(list(value.items())) if value else "-"
    if isinstance(value, list):
        if all(isinstance(v, (int, float)) for v in value):
            return html.escape(", ".join(_number(v) for v in value)) or "-"
        return "<ul style='margin:0'>" + "".join(f"<li>{_value_html(v)}</li>" for v in value) + "</ul>"
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "-"}[value]
    if isinstance(value, (int, float)):
        return _number(value)
    return html.escape(str(value))


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"

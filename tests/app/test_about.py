"""About box: shows the model in use and its card from the ONNX metadata (``m3ret.card``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.model_format import META_CARD
from app.about import AboutDialog, card_html, model_card, read_model_metadata


@pytest.fixture(scope="module")
def carded_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    onnx = pytest.importorskip("onnx")
    from tests.engine.conftest import build_pooling_model

    path = build_pooling_model(tmp_path_factory.mktemp("carded") / "carded.onnx", model_id="about-test-model")
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key = META_CARD
    entry.value = json.dumps({"recipe": "MAE + SimDINO", "steps": 1234, "evaluation": {"P@1": 0.5}})
    onnx.save(model, str(path))
    return path


def test_card_is_read_from_the_onnx_metadata(carded_model: Path) -> None:
    meta = read_model_metadata(carded_model)
    card = model_card(meta)
    assert card == {"recipe": "MAE + SimDINO", "steps": 1234, "evaluation": {"P@1": 0.5}}
    text = card_html(meta, carded_model)
    assert "about-test-model" in text and "MAE + SimDINO" in text and "1234" in text


def test_dialog_shows_the_card(qtbot, carded_model: Path) -> None:
    dialog = AboutDialog(carded_model)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.metadata is not None, timeout=20_000)
    shown = dialog.text.toPlainText()
    assert "about-test-model" in shown and "SimDINO" in shown and "P@1" in shown


def test_missing_model_and_model_without_card(qtbot, tmp_path: Path, app_model: Path) -> None:
    dialog = AboutDialog(tmp_path / "absent.onnx")
    qtbot.addWidget(dialog)
    assert "No model file found" in dialog.text.toPlainText()
    assert "carries no card" in card_html(read_model_metadata(app_model), app_model)


def test_bundled_model_card_reads_as_text_not_json(qtbot, output_dir: Path) -> None:
    """Every card entry of the default model (nested settings, lists, the preprocessing) shows as tables and
    bullets: no JSON braces or quoted keys in what a person reads."""
    from engine.encoder import default_model_path
    from tests.app.conftest import save_png

    model = default_model_path()
    if not model.is_file():
        pytest.skip("bundled default model absent")
    dialog = AboutDialog(model)
    qtbot.addWidget(dialog)
    dialog.resize(700, 700)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.metadata is not None, timeout=60_000)
    shown = dialog.text.toPlainText()
    assert "Preprocessing" in shown and "Model card" in shown
    assert "{" not in shown and '":' not in shown, [line for line in shown.splitlines() if "{" in line][:3]
    from app.viewers.canvas import grab_widget

    save_png(output_dir, "about_dialog.png", grab_widget(dialog))

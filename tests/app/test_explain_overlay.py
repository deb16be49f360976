"""Why this match in the compare view: both viewers jump to the planted slice, the heatmap overlay shows on the
matched slices only and fades, the similarity plot jumps the result; a screenshot on real CT volumes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from app.compare_view import CompareView
from app.explain_overlay import position_view, shown_position
from app.viewers.canvas import grab_widget
from engine.encoder import Encoder, default_model_path
from engine.io.case import Case
from tests.app.conftest import changed_fraction, read_case, save_png, shared_file, show_widget


def smooth_volume(rng: np.random.Generator, depth: int, size: int = 64) -> np.ndarray:
    coarse = rng.uniform(0, 200, (depth, 8, 8)).astype(np.float32)
    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_CUBIC) for c in coarse])  # Z Y X


def volume(pixels: np.ndarray) -> Case:
    return Case(pixels=pixels, kind="volume", modality="MR", source_files=[Path("synthetic")], fingerprint="x",
                spacing=(1.0, 1.0, 1.0), affine=np.eye(4))


def _explain(qtbot, view: CompareView, query: Case, result: Case, library) -> None:  # noqa: ANN001
    with qtbot.waitSignal(view.explain_panel.explained, timeout=120_000):
        view.set_pair(query, result, "query", "result", library=library)


def test_compare_jumps_to_the_planted_slice_and_overlays_the_heatmap(qtbot, app_model: Path) -> None:
    rng = np.random.default_rng(7)
    query, result = smooth_volume(rng, 12), smooth_volume(rng, 20)
    result[15] = query[6]  # the query's middle slice (the one shown first), planted at 15
    library = SimpleNamespace(encoder=Encoder(app_model))
    view = show_widget(qtbot, CompareView(), 1000, 620)
    _explain(qtbot, view, volume(query), volume(result), library)
    panel = view.explain_panel
    assert shown_position(view.query_viewer) == 6 and shown_position(view.result_viewer) == 15
    assert panel.explanation.result_position == 15 and "query 6 ↔ result 15" in panel.status.text()
    assert len(panel.layers) == 2 and all(layer.visible for layer in panel.layers)
    axial = position_view(view.result_viewer)
    with_heat = axial.grab_rgb()
    panel.opacity_slider.setValue(0)  # faded out: the plain slice
    faded = axial.grab_rgb()
    assert changed_fraction(with_heat, faded) > 0.05
    panel.opacity_slider.setValue(80)
    panel.heatmap_box.setChecked(False)
    assert not any(layer.visible for layer in panel.layers)
    panel.heatmap_box.setChecked(True)
    # the plot: a profile over the 20 result slices, peak at 15; a click jumps the result viewer
    assert panel.plot.positions.tolist() == list(range(20)) and int(np.argmax(panel.plot.similarities)) == 15
    panel.plot.positionClicked.emit(3)
    assert shown_position(view.result_viewer) == 3 and not panel.layers[1].visible  # heatmap belongs to slice 15
    # scrolling the query moves the result to its new slice's best match (from the matrix already computed)
    view.query_viewer.set_cursor((32, 32, 9))
    expected, _ = panel.explanation.match.best_for(9)
    qtbot.waitUntil(lambda: shown_position(view.result_viewer) == expected, timeout=5_000)
    assert panel.plot.marked == expected and "query 9" in panel.status.text()
    # "Match this slice" recomputes the heatmaps for the new pair
    with qtbot.waitSignal(panel.explained, timeout=120_000):
        panel.here_button.click()
    assert panel.explanation.query_position == 9 and shown_position(view.query_viewer) == 9
    assert shown_position(view.result_viewer) == panel.explanation.result_position


def test_compare_screenshot_on_real_ct(qtbot, shared_data: Path, app_model: Path, output_dir: Path) -> None:
    paths = [shared_file(shared_data, lambda r, n=n: r["dataset"] == "lidc_nodule_voi" and r["split"] == "test"
                         and r["path"].endswith(n)) for n in ("0007_R_1.nii.gz", "0016_R_1.nii.gz")]
    query, result = (read_case(p) for p in paths)
    bundled = default_model_path()  # the screenshot shows the shipped model's heatmaps where it is present
    library = SimpleNamespace(encoder=Encoder(bundled if bundled.is_file() else app_model))
    view = show_widget(qtbot, CompareView(), 1200, 760)
    _explain(qtbot, view, query, result, library)
    panel = view.explain_panel
    assert shown_position(view.result_viewer) == panel.explanation.result_position
    assert panel.plot.isVisible() and panel.plot.positions.size == result.pixels.shape[0]
    save_png(output_dir, "compare_view_explain.png", grab_widget(view))


def test_without_a_library_it_says_so(qtbot) -> None:
    rng = np.random.default_rng(1)
    view = show_widget(qtbot, CompareView(), 800, 500)
    view.set_pair(volume(smooth_volume(rng, 4)), volume(smooth_volume(rng, 4)), "q", "r")
    assert "Open a library" in view.explain_panel.status.text() and not view.explain_panel.layers

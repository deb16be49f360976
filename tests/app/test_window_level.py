"""Window/level presets and automatic windows on real pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.window_level import PRESETS, Window, auto_window, default_window, drag_window, is_hounsfield, window_for_key
from tests.app.conftest import read_case, shared_file


def test_presets_match_the_usual_ct_windows() -> None:
    assert PRESETS["lung"] == Window(-600, 1500)
    assert PRESETS["mediastinum"] == Window(40, 400)
    assert PRESETS["bone"] == Window(400, 1800)
    assert PRESETS["brain"] == Window(40, 80)
    assert window_for_key(1, np.zeros(4)) == PRESETS["lung"]
    assert window_for_key(4, np.zeros(4)) == PRESETS["brain"]
    assert window_for_key(7, np.zeros(4)) is None


def test_auto_window_spans_the_percentiles() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.normal(1000.0, 100.0, size=(200, 200)).astype(np.float32)
    pixels[0, :50] = 1e6  # outliers do not stretch the window
    window = auto_window(pixels)
    assert 700 < window.low < 800 and 1200 < window.high < 1300
    assert window_for_key(0, pixels) == window


def test_auto_window_never_has_zero_width() -> None:
    assert auto_window(np.full((8, 8), 7, np.uint8)).width > 0
    assert auto_window(np.array([], np.float32)).width > 0


def test_drag_widens_to_the_right_and_lowers_level_downwards() -> None:
    start = Window(100.0, 200.0)
    wider = drag_window(start, 50, 0, 1000.0)
    assert wider.width > start.width and wider.level == start.level
    lower = drag_window(start, 0, 50, 1000.0)
    assert lower.level < start.level and lower.width == start.width


def test_real_ct_nifti_is_recognised_as_hounsfield(shared_data: Path) -> None:
    path = shared_file(shared_data, lambda r: r["modality"] == "ct", "formats/manifest.csv")
    case = read_case(path)
    assert is_hounsfield(case.pixels, case.intensity, case.modality)
    assert default_window(case.pixels, case.intensity, case.modality) == Window(40.0, 400.0)


def test_xray_png_is_not_hounsfield_and_gets_auto_window(shared_data: Path) -> None:
    case = read_case(shared_file(shared_data, lambda r: r["modality"] == "xray"))
    assert not is_hounsfield(case.pixels, case.intensity, case.modality)
    window = default_window(case.pixels, case.intensity, case.modality)
    assert window == auto_window(case.pixels)
    assert case.pixels.min() <= window.high and window.low <= case.pixels.max()

"""engine.charts: bar heights follow the values, NaN leaves a gap, PNG decodes."""

from __future__ import annotations

import cv2
import numpy as np

from engine.charts import SERIES_COLOURS, grouped_bar_chart_png


def _bar_heights(image: np.ndarray, colour: tuple[int, int, int]) -> list[int]:
    mask = (np.abs(image.astype(int) - colour).sum(axis=2) == 0)  # H W
    columns = np.flatnonzero(mask[70:].sum(axis=0) > 0)  # below the legend
    bars = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1) if columns.size else []
    return [int(mask[70:, bar].sum(axis=0).max()) for bar in bars]


def test_heights_proportional_and_nan_is_a_gap() -> None:
    png = grouped_bar_chart_png(["a", "b", "c"], {"m": [1.0, 0.5, float("nan")], "r": [0.25, 0.5, 0.75]}, "t")
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    first = _bar_heights(image, SERIES_COLOURS[0])
    assert len(first) == 2 and abs(first[0] - 2 * first[1]) <= 1  # 1.0 vs 0.5, no bar for NaN
    second = _bar_heights(image, SERIES_COLOURS[1])
    assert len(second) == 3 and abs(3 * second[0] - second[2]) <= 2 and abs(2 * second[0] - second[1]) <= 2


def test_line_chart_draws_the_curve_and_the_mark() -> None:
    from engine.charts import line_chart_png

    png = line_chart_png(range(10), [0, 1, 2, 3, 9, 3, 2, 1, 0, 0], "sim", marks=[4])
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    curve = np.abs(image.astype(int) - SERIES_COLOURS[0]).sum(axis=2) < 30  # H W
    mark = np.abs(image.astype(int) - SERIES_COLOURS[1]).sum(axis=2) == 0
    rows, cols = np.nonzero(curve)
    peak_col = cols[np.argmin(rows)]  # the highest point of the curve
    mark_cols = np.unique(np.nonzero(mark)[1])
    assert len(mark_cols) == 1 and abs(int(peak_col) - int(mark_cols[0])) <= 2

"""Small charts drawn with OpenCV, as PNG bytes: a grouped bar chart (``m3ret evaluate --plot``) and a line
chart (``m3ret explain``: similarity along the axis).

OpenCV is already a core dependency; matplotlib would add tens of megabytes to the packaged app for one chart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

# BGR colours, one per series (colour-blind-safe Okabe-Ito picks)
SERIES_COLOURS: tuple[tuple[int, int, int], ...] = ((178, 114, 0), (0, 159, 230), (115, 158, 0), (167, 121, 204))
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def grouped_bar_chart_png(
    groups: Sequence[str], series: Mapping[str, Sequence[float]], title: str, y_label: str = "",
    y_max: float = 1.0, bar_width: int = 14,
) -> bytes:
    """PNG of one bar per (group, series) value in [0, ``y_max``]; NaN values are drawn as a gap."""
    names = list(series)
    n_groups, n_series = len(groups), max(1, len(names))
    groups = [g if len(g) <= 30 else ".." + g[-28:] for g in groups]  # the end of "dataset/label" says most
    longest = max((cv2.getTextSize(g, _FONT, 0.4, 1)[0][0] for g in groups), default=0)
    left, right, top, bottom = 60, 20, 70, min(240, longest + 16)
    group_width = n_series * bar_width + 16
    width = max(360, left + right + n_groups * group_width)
    height = 270 + bottom
    image = np.full((height, width, 3), 255, np.uint8)  # H W 3 BGR
    plot_h = height - top - bottom
    cv2.putText(image, title, (left, 22), _FONT, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    for tick in np.linspace(0.0, y_max, 6):
        y = int(round(top + plot_h * (1 - tick / y_max)))
        cv2.line(image, (left, y), (width - right, y), (225, 225, 225), 1)
        cv2.putText(image, f"{tick:.1f}", (left - 36, y + 4), _FONT, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    if y_label:
        cv2.putText(image, y_label, (4, top - 12), _FONT, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.line(image, (left, top + plot_h), (width - right, top + plot_h), (0, 0, 0), 1)
    for g, group in enumerate(groups):
        x0 = left + 8 + g * group_width
        for s, name in enumerate(names):
            value = series[name][g]
            if value is None or math.isnan(value):
                continue
            bar_h = int(round(plot_h * min(max(value, 0.0), y_max) / y_max))
            x = x0 + s * bar_width
            colour = SERIES_COLOURS[s % len(SERIES_COLOURS)]
            cv2.rectangle(image, (x, top + plot_h - bar_h), (x + bar_width - 2, top + plot_h), colour, -1)
        _rotated_label(image, group, x0, top + plot_h + 6)
    for s, name in enumerate(names):  # legend, one row under the title
        x = left + s * 130
        y = 32
        cv2.rectangle(image, (x, y), (x + 10, y + 10), SERIES_COLOURS[s % len(SERIES_COLOURS)], -1)
        cv2.putText(image, name, (x + 16, y + 10), _FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return png.tobytes()


def line_chart_png(x: Sequence[float], y: Sequence[float], title: str, x_label: str = "",
                   marks: Sequence[float] = (), width: int = 480, height: int = 220) -> bytes:
    """PNG of ``y`` against ``x`` (y axis fitted to the data), with vertical lines at the ``marks`` x values."""
    xs, ys = np.asarray(x, np.float64), np.asarray(y, np.float64)
    left, right, top, bottom = 50, 16, 34, 34
    image = np.full((height, width, 3), 255, np.uint8)  # H W 3 BGR
    cv2.putText(image, title, (left, 20), _FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    plot_w, plot_h = width - left - right, height - top - bottom
    x0, x1 = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0)
    y0, y1 = (float(ys.min()), float(ys.max())) if ys.size else (0.0, 1.0)
    x1, y1 = (x1 if x1 > x0 else x0 + 1.0), (y1 if y1 > y0 else y0 + 1e-3)

    def to_px(xv: float, yv: float) -> tuple[int, int]:
        return (int(round(left + plot_w * (xv - x0) / (x1 - x0))), int(round(top + plot_h * (1 - (yv - y0) / (y1 - y0)))))

    cv2.rectangle(image, (left, top), (left + plot_w, top + plot_h), (200, 200, 200), 1)
    for value, anchor in ((y1, top + 4), (y0, top + plot_h)):
        cv2.putText(image, f"{value:.2f}", (4, anchor), _FONT, 0.38, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(image, f"{x0:g}", (left, height - 16), _FONT, 0.38, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(image, f"{x1:g}", (left + plot_w - 20, height - 16), _FONT, 0.38, (60, 60, 60), 1, cv2.LINE_AA)
    if x_label:
        cv2.putText(image, x_label, (left + plot_w // 2 - 20, height - 6), _FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for mark in marks:
        px = to_px(float(mark), y0)[0]
        cv2.line(image, (px, top), (px, top + plot_h), SERIES_COLOURS[1], 1)
    points = np.array([to_px(a, b) for a, b in zip(xs, ys)], np.int32).reshape(-1, 1, 2)
    if len(points):
        cv2.polylines(image, [points], False, SERIES_COLOURS[0], 2, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return png.tobytes()


def _rotated_label(image: np.ndarray, text: str, x: int, y: int) -> None:
    """Draw ``text`` rotated 90 degrees (reading upwards) with its top-left corner at (x, y)."""
    (tw, th), base = cv2.getTextSize(text, _FONT, 0.4, 1)
    patch = np.full((th + base + 2, tw + 2, 3), 255, np.uint8)
    cv2.putText(patch, text, (1, th + 1), _FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    patch = cv2.rotate(patch, cv2.ROTATE_90_COUNTERCLOCKWISE)  # tw+2 tall, th+base+2 wide
    h, w = patch.shape[:2]
    h, w = min(h, image.shape[0] - y), min(w, image.shape[1] - x)
    if h > 0 and w > 0:
        region = image[y : y + h, x : x + w]
        np.minimum(region, patch[:h, :w], out=region)

"""A small similarity-along-the-axis plot for the compare view: one line (similarity of each result slice / frame
to the query's shown one), a marker at the result's shown position; a click asks to jump there."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

LINE_COLOUR = QColor(0, 114, 178)
MARK_COLOUR = QColor(230, 159, 0)
_MARGIN = 6


class SimilarityPlot(QWidget):
    """Similarity against result position; ``positionClicked(int)`` when the user clicks a position."""

    positionClicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.positions = np.zeros(0, dtype=np.int64)  # P, result positions (sorted)
        self.similarities = np.zeros(0, dtype=np.float32)  # P
        self.marked: int | None = None
        self.setMinimumHeight(56)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Similarity of each result slice/frame to the query's shown one: click to jump there")
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def sizeHint(self) -> QSize:
        return QSize(320, 64)

    def set_profile(self, positions: Sequence[int], similarities: Sequence[float], marked: int | None) -> None:
        """Show a profile (positions ascending) with a marker at ``marked``."""
        self.positions = np.asarray(positions, dtype=np.int64)
        self.similarities = np.asarray(similarities, dtype=np.float32)
        self.marked = marked
        self.update()

    def clear(self) -> None:
        self.set_profile([], [], None)

    def _plot_rect(self) -> QRectF:
        return QRectF(_MARGIN, _MARGIN, max(1, self.width() - 2 * _MARGIN), max(1, self.height() - 2 * _MARGIN))

    def _x_of(self, position: float, rect: QRectF) -> float:
        lo, hi = float(self.positions[0]), float(self.positions[-1])
        return rect.left() + rect.width() * ((position - lo) / (hi - lo) if hi > lo else 0.5)

    def position_at(self, x: float) -> int | None:
        """The plotted position nearest the widget x coordinate."""
        if self.positions.size == 0:
            return None
        rect = self._plot_rect()
        xs = np.array([self._x_of(p, rect) for p in self.positions])
        return int(self.positions[int(np.argmin(np.abs(xs - x)))])

    def mousePressEvent(self, event: QMouseEvent) -> None:
        position = self.position_at(event.position().x())
        if position is not None:
            self.positionClicked.emit(position)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor(250, 250, 250))
        rect = self._plot_rect()
        painter.setPen(QPen(QColor(200, 200, 200)))
        painter.drawRect(rect)
        if self.positions.size == 0:
            painter.setPen(QColor(120, 120, 120))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "no slices / frames to compare")
            return
        lo, hi = float(self.similarities.min()), float(self.similarities.max())
        span = hi - lo if hi > lo else 1.0
        path = QPainterPath()
        for i, (pos, sim) in enumerate(zip(self.positions, self.similarities)):
            point = QPointF(self._x_of(float(pos), rect), rect.bottom() - rect.height() * (float(sim) - lo) / span)
            path.moveTo(point) if i == 0 else path.lineTo(point)
        painter.setPen(QPen(LINE_COLOUR, 2))
        painter.drawPath(path)
        if self.marked is not None:
            x = self._x_of(float(self.marked), rect)
            painter.setPen(QPen(MARK_COLOUR, 2))
            painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
        painter.setPen(QColor(80, 80, 80))
        painter.drawText(rect.adjusted(3, 1, -3, -1), Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignRight,
                         f"{hi:.3f}")
        painter.drawText(rect.adjusted(3, 1, -3, -1), Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignRight,
                         f"{lo:.3f}")

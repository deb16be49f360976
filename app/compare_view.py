"""Query and result side by side, each in its own viewer; window/level linked for same-modality pairs.

Each pane's title has a fixed height of two lines, each elided in the middle to the pane's width, so a long file
name neither widens one side (squeezing the other) nor pushes one image lower than the other. The "Link
window/level" box never takes the keyboard focus: after a pair is shown the result viewer has it, so Space plays
a video and the number keys pick presets.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSizePolicy, QSplitter, QVBoxLayout, QWidget

from engine.io.case import Case
from app.explain_overlay import ExplainPanel
from app.viewers.base import CaseViewer, dispose_viewer
from app.viewers.viewer_factory import create_viewer, viewer_class
from app.window_level import Window

log = logging.getLogger(__name__)

TITLE_LINES = 2
TITLE_SEPARATOR = " — "  # "Result #1, match 87: XR image — file name": the name goes on the second line


class TitleLabel(QLabel):
    """At most ``TITLE_LINES`` lines (split at ``TITLE_SEPARATOR``), each elided in the middle to the label's width;
    a fixed height, and a width that follows the pane instead of the text. The full text is the tooltip."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.full_text = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(TITLE_LINES * self.fontMetrics().lineSpacing() + 4)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.set_title(text)

    def set_title(self, text: str) -> None:
        self.full_text = text
        self.setToolTip(text)
        self._elide()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        head, separator, tail = self.full_text.partition(TITLE_SEPARATOR)
        lines = [head, tail] if separator else [head]
        width = max(40, self.width() - 4)
        metrics = self.fontMetrics()
        self.setText("\n".join(metrics.elidedText(line, Qt.TextElideMode.ElideMiddle, width)
                               for line in lines[:TITLE_LINES]))


class ComparePane(QWidget):
    """A title (two lines at most) over a viewer."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = TitleLabel(title, self)
        self.viewer: CaseViewer | None = None
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(2, 2, 2, 2)
        self._layout.addWidget(self.title)
        self._placeholder = QLabel("—", self)
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._layout.addWidget(self._placeholder, 1)

    def show_case(self, case: Case, title: str) -> CaseViewer:
        """Replace the viewer by one made for ``case``."""
        self.title.set_title(title)
        self._placeholder.hide()
        if self.viewer is not None and type(self.viewer) is viewer_class(case):
            self.viewer.set_case(case)  # reuse the viewer and its OpenGL windows
            return self.viewer
        if self.viewer is not None:
            self._layout.removeWidget(self.viewer)
            dispose_viewer(self.viewer)
        options = {"volume_rendering": False} if case.kind == "volume" and case.pixels.ndim == 3 else {}
        self.viewer = create_viewer(case, self, **options)  # two volume renderings side by side: on demand
        self._layout.addWidget(self.viewer, 1)
        self.viewer.show()  # a child added to a visible widget stays hidden until shown
        return self.viewer


class CompareView(QWidget):
    """Two panes (query, result) in a splitter and a "Link window/level" switch."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.query_pane = ComparePane("Query", self)
        self.result_pane = ComparePane("Result", self)
        self.link_box = QCheckBox("Link window/level", self)
        self.link_box.setToolTip("Same-modality pairs share one window/level")
        self.link_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space belongs to the viewers (video playback)
        self.info = QLabel("Click a search result to compare it with the query.", self)
        self.explain_panel = ExplainPanel(self)  # why this match: matched slices, heatmaps, similarity plot
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.query_pane)
        splitter.addWidget(self.result_pane)
        splitter.setChildrenCollapsible(False)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        self.splitter = splitter
        top = QHBoxLayout()
        top.addWidget(self.info, 1)
        top.addWidget(self.link_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.explain_panel)
        layout.addWidget(splitter, 1)
        self._syncing = False
        self.link_box.toggled.connect(self._link_toggled)

    @property
    def query_viewer(self) -> CaseViewer | None:
        return self.query_pane.viewer

    @property
    def result_viewer(self) -> CaseViewer | None:
        return self.result_pane.viewer

    def set_pair(self, query: Case, result: Case, query_title: str, result_title: str, library: object = None) -> None:
        """Show both cases; link their window/level when they share a modality and both have one; with a
        ``library`` (its encoder), explain the match (matched slices, heatmaps) in the background."""
        left = self.query_pane.show_case(query, query_title)
        right = self.result_pane.show_case(result, result_title)
        for viewer in (left, right):
            if not getattr(viewer, "_compare_linked", False):
                viewer.windowChanged.connect(lambda w, v=viewer: self._sync(self._other(v), w))
                viewer._compare_linked = True
        linkable = left.supports_window and right.supports_window and query.modality == result.modality
        self.link_box.setEnabled(linkable)
        self.link_box.setChecked(linkable)
        same = "same modality" if query.modality == result.modality else "cross-modal"
        self.info.setText(f"{query.modality} {query.kind} vs {result.modality} {result.kind} ({same})")
        if linkable:
            self._sync(right, left.window())
        self.explain_panel.set_pair(library, left, right)
        self.splitter.setSizes([1, 1])  # equal halves, whatever the titles
        focus = getattr(right, "view", right)  # the result's canvas takes the keys (Space = play a video)
        focus.setFocus(Qt.FocusReason.OtherFocusReason)

    def _other(self, viewer: CaseViewer) -> CaseViewer | None:
        return self.result_viewer if viewer is self.query_viewer else self.query_viewer

    @property
    def linked(self) -> bool:
        return self.link_box.isEnabled() and self.link_box.isChecked()

    def _link_toggled(self, on: bool) -> None:
        if on and self.query_viewer is not None and self.result_viewer is not None and self.query_viewer.window():
            self._sync(self.result_viewer, self.query_viewer.window())

    def _sync(self, target: CaseViewer | None, window: Window | None) -> None:
        if target is None or window is None or self._syncing or not self.linked:
            return
        self._syncing = True
        try:
            target.set_window(window, emit=False)
        finally:
            self._syncing = False

    def clear(self) -> None:
        self.explain_panel.clear()
        for pane in (self.query_pane, self.result_pane):
            if pane.viewer is not None:
                dispose_viewer(pane.viewer)
                pane.viewer = None
                pane._placeholder.show()

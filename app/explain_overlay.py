"""Why this match, in the compare view: jump both viewers to the matched slices / frames, a similarity-along-the-axis
plot (click to jump), and the occlusion heatmaps (``engine.explain``) as a toggleable, fadeable overlay on both.

The work runs in a worker thread (``explain_pair_job``): per-position embeddings of both cases, then the heatmaps at
the matched pair. Scrolling the query afterwards moves the result to the best match of the query's new slice / frame
(from the similarity matrix already computed; the heatmaps stay on the slices they explain until *Match this
slice* recomputes them). The query's per-position embeddings are kept for the query case on screen (``QueryCache``), so
clicking through the results embeds each result only. The overlay is one RGBA image slice drawn in the slice
view's top layer (the cross-hair's), at the slice it explains, and hidden on any other slice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget
from vtkmodules.vtkRenderingCore import vtkImageSlice, vtkImageSliceMapper

from app.similarity_plot import SimilarityPlot
from app.viewers.base import CaseViewer
from app.viewers.canvas import to_image_data
from app.viewers.slice_view import AXIAL, SliceView
from app.workers import FunctionWorker, create_worker
from engine.io.case import Case

log = logging.getLogger(__name__)

DEFAULT_OPACITY = 0.6
FOLLOW_INTERVAL_MS = 150  # how often the panel looks whether the user moved the query to another slice / frame


# ---- worker side (no Qt widgets) -----------------------------------------------------------------------------------


@dataclass
class PairExplanation:
    """What the worker returns: the position match and the heatmaps at the query's shown position."""

    match: Any  # engine.explain.PositionMatch
    heat: Any  # engine.explain.PairHeatmap
    query_position: int
    result_position: int


class QueryCache:
    """Per-position embeddings of the query on screen (keyed by the case object and the model id)."""

    def __init__(self) -> None:
        self._key: tuple[int, str] | None = None
        self._embeddings: np.ndarray | None = None

    def get(self, case: Case, model_id: str) -> np.ndarray | None:
        return self._embeddings if self._key == (id(case), model_id) else None

    def put(self, case: Case, model_id: str, embeddings: np.ndarray) -> None:
        self._key, self._embeddings = (id(case), model_id), embeddings


def explain_pair_job(library: Any, query: Case, result: Case, query_position: int | None,
                     cache: QueryCache | None = None) -> PairExplanation:
    """Match positions and compute the heatmaps at (query position -> its best result position)."""
    from engine.explain import explained_positions, match_positions, n_positions, occlusion_heatmaps, position_embeddings

    encoder = library.encoder
    cached = cache.get(query, encoder.model_id) if cache is not None else None
    if cached is None:
        cached = position_embeddings(encoder, query, explained_positions(query))
        if cache is not None:
            cache.put(query, encoder.model_id, cached)
    match = match_positions(encoder, query, result, query_embeddings=cached)
    q_pos = n_positions(query) // 2 if query_position is None else int(query_position)
    r_pos, _ = match.best_for(q_pos)
    heat = occlusion_heatmaps(encoder, query, result, q_pos, r_pos)
    return PairExplanation(match, heat, q_pos, r_pos)


# ---- viewer helpers --------------------------------------------------------------------------------------------------


def position_view(viewer: CaseViewer) -> SliceView | None:
    """The slice view whose slice index is the case's position (axial for volumes, the frame view for videos)."""
    views = getattr(viewer, "views", None)
    if isinstance(views, dict):
        return views.get(AXIAL)
    view = getattr(viewer, "view", None)
    return view if isinstance(view, SliceView) else None


def shown_position(viewer: CaseViewer) -> int:
    """The slice / frame the viewer shows (0 for a 2D image)."""
    view = position_view(viewer)
    return int(view.slice_index) if view is not None and viewer.case is not None and viewer.case.kind != "image2d" else 0


def jump_to(viewer: CaseViewer, position: int) -> None:
    """Show slice / frame ``position``: volumes move the cross-hair there, videos go to that frame."""
    if viewer.case is None or viewer.case.kind == "image2d":
        return
    if hasattr(viewer, "set_cursor") and hasattr(viewer, "cursor"):
        x, y, _ = viewer.cursor
        viewer.set_cursor((x, y, int(position)))
    elif hasattr(viewer, "set_frame"):
        viewer.set_frame(int(position))
    else:
        view = position_view(viewer)
        if view is not None:
            view.set_slice(int(position))


class HeatmapLayer:
    """An RGBA heatmap drawn over one slice of a slice view (its top layer), visible only on that slice."""

    def __init__(self, view: SliceView) -> None:
        self.view = view
        self.position = 0
        self.enabled = True
        self.mapper = vtkImageSliceMapper()
        self.mapper.SetOrientation(AXIAL)
        self.actor = vtkImageSlice()
        self.actor.SetMapper(self.mapper)
        prop = self.actor.GetProperty()
        prop.SetColorWindow(255.0)
        prop.SetColorLevel(127.5)
        prop.SetInterpolationTypeToLinear()
        prop.SetOpacity(DEFAULT_OPACITY)
        self.actor.PickableOff()
        self.actor.SetVisibility(False)
        self._has_image = False
        view.overlay.AddViewProp(self.actor)
        self._observer = view.renderer.AddObserver("StartEvent", lambda *_: self._sync_visibility())

    def set_heatmap(self, heat: np.ndarray, position: int) -> None:
        """Show ``heat`` (``H W`` signed, on the frame at ``position``) as warm/cool colours."""
        from engine.explain import heatmap_colours

        colours, weight = heatmap_colours(heat)  # H W 3, H W
        rgba = np.concatenate([colours, (weight * 255 + 0.5).astype(np.uint8)[..., None]], axis=-1)  # H W 4
        base = self.view.mapper.GetInput()
        spacing = base.GetSpacing() if base is not None else (1.0, 1.0, 1.0)
        image = to_image_data(rgba, spacing, color=True)
        image.SetOrigin(0.0, 0.0, float(position) * spacing[2])
        self.mapper.SetInputData(image)
        self.position = int(position)
        self._has_image = True
        self.view.request_render()

    def set_opacity(self, opacity: float) -> None:
        self.actor.GetProperty().SetOpacity(float(np.clip(opacity, 0.0, 1.0)))
        self.view.request_render()

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        self.view.request_render()

    @property
    def visible(self) -> bool:
        return self._has_image and self.enabled and self.view.slice_index == self.position

    def _sync_visibility(self) -> None:
        self.actor.SetVisibility(self.visible)

    def remove(self) -> None:
        self.view.overlay.RemoveViewProp(self.actor)
        self.view.renderer.RemoveObserver(self._observer)
        self._has_image = False


# ---- the panel ---------------------------------------------------------------------------------------------------


class ExplainPanel(QWidget):
    """Controls under the compare view's title: heatmap on/off and fade, jump to the best match, the plot."""

    explained = Signal(object)  # PairExplanation, once shown

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.heatmap_box = QCheckBox("Heatmap", self)
        self.heatmap_box.setChecked(True)
        self.heatmap_box.setToolTip("Occlusion heatmap: warm = supports the match, cool = works against it")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(int(DEFAULT_OPACITY * 100))
        self.opacity_slider.setMaximumWidth(120)
        self.opacity_slider.setToolTip("Heatmap opacity")
        self.best_button = QPushButton("Best pair", self)
        self.best_button.setToolTip("Jump both viewers to the most similar slices / frames overall")
        self.here_button = QPushButton("Match this slice", self)
        self.here_button.setToolTip("Find the result's best match for the query's shown slice / frame")
        self.status = QLabel("", self)
        self.plot = SimilarityPlot(self)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        for widget in (self.heatmap_box, self.opacity_slider, self.best_button, self.here_button):
            row.addWidget(widget)
        row.addWidget(self.status, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.plot)
        self.cache = QueryCache()
        self.library: Any = None
        self.explanation: PairExplanation | None = None
        self.layers: list[HeatmapLayer] = []
        self._viewers: tuple[CaseViewer, CaseViewer] | None = None
        self._request = 0
        self.worker: FunctionWorker | None = None
        self._followed = -1  # the query position the result was last matched to
        self.follow_timer = QTimer(self)
        self.follow_timer.setInterval(FOLLOW_INTERVAL_MS)
        self.follow_timer.timeout.connect(self.follow_query)
        self.heatmap_box.toggled.connect(lambda on: [layer.set_enabled(on) for layer in self.layers])
        self.opacity_slider.valueChanged.connect(lambda v: [layer.set_opacity(v / 100) for layer in self.layers])
        self.best_button.clicked.connect(self.jump_to_best_pair)
        self.here_button.clicked.connect(lambda: self.explain(query_position=self._query_position()))
        self.plot.positionClicked.connect(self._plot_clicked)
        self._set_controls(False)

    def _set_controls(self, on: bool) -> None:
        for widget in (self.heatmap_box, self.opacity_slider, self.best_button, self.here_button, self.plot):
            widget.setEnabled(on)

    def set_pair(self, library: Any, query_viewer: CaseViewer, result_viewer: CaseViewer) -> FunctionWorker | None:
        """A new pair on screen: forget the old explanation and compute this one (``library`` may be None)."""
        self.library = library
        self._viewers = (query_viewer, result_viewer)
        self._clear_layers()
        self.explanation = None
        self.plot.clear()
        return self.explain(query_position=None)

    def explain(self, query_position: int | None) -> FunctionWorker | None:
        """Compute (in a worker) the match and heatmaps for the query's position (None: its middle)."""
        self.follow_timer.stop()
        if self.library is None or self._viewers is None:
            self.status.setText("Open a library to see why cases match.")
            return None
        query_viewer, result_viewer = self._viewers
        if query_viewer.case is None or result_viewer.case is None:
            return None
        self._request += 1
        request = self._request
        self._set_controls(False)
        self.status.setText("Finding the matching slice / frame and the heatmap…")

        def done(explanation: PairExplanation) -> None:
            if request == self._request:
                self._show(explanation)

        def failed(exc: Exception) -> None:
            if request == self._request:
                self.status.setText(f"Cannot explain this match: {exc}")

        self.worker = create_worker(explain_pair_job, self.library, query_viewer.case, result_viewer.case,
                                    query_position, self.cache, _connect={"returned": done, "errored": failed})
        return self.worker

    def _show(self, explanation: PairExplanation) -> None:
        assert self._viewers is not None
        self.explanation = explanation
        query_viewer, result_viewer = self._viewers
        jump_to(query_viewer, explanation.query_position)
        jump_to(result_viewer, explanation.result_position)
        self._clear_layers()
        for viewer, heat, position in ((query_viewer, explanation.heat.query, explanation.query_position),
                                       (result_viewer, explanation.heat.result, explanation.result_position)):
            view = position_view(viewer)
            if view is not None:
                layer = HeatmapLayer(view)
                layer.set_heatmap(heat, position)
                layer.set_opacity(self.opacity_slider.value() / 100)
                layer.set_enabled(self.heatmap_box.isChecked())
                self.layers.append(layer)
        positions, sims = explanation.match.profile(explanation.query_position)
        self.plot.set_profile(positions, sims, explanation.result_position)
        self._followed = explanation.query_position
        if len(explanation.match.query_positions) > 1:
            self.follow_timer.start()
        self._set_controls(True)
        q, r, s = explanation.match.best_pair()
        many = len(explanation.match.result_positions) > 1 or len(explanation.match.query_positions) > 1
        self.best_button.setEnabled(many)
        self.here_button.setEnabled(len(explanation.match.query_positions) > 1)
        self.plot.setVisible(len(explanation.match.result_positions) > 1)
        self.status.setText(
            f"query {explanation.query_position} ↔ result {explanation.result_position} "
            f"(similarity {explanation.heat.score:.3f})" + (f"; best pair {q} ↔ {r} ({s:.3f})" if many else ""))
        self.explained.emit(explanation)

    def follow_query(self) -> None:
        """When the query shows another slice / frame, jump the result to that one's best match (no new model run)."""
        if self.explanation is None or self._viewers is None:
            return
        position = shown_position(self._viewers[0])
        if position == self._followed:
            return
        self._followed = position
        match = self.explanation.match
        best, score = match.best_for(position)
        jump_to(self._viewers[1], best)
        positions, sims = match.profile(position)
        self.plot.set_profile(positions, sims, best)
        self.status.setText(f"query {position} ↔ result {best} (similarity {score:.3f}); "
                            "heatmaps: press Match this slice")

    def jump_to_best_pair(self) -> None:
        if self.explanation is None or self._viewers is None:
            return
        q, _r, _s = self.explanation.match.best_pair()
        self.explain(query_position=q)

    def _plot_clicked(self, position: int) -> None:
        if self._viewers is not None:
            jump_to(self._viewers[1], position)
            self.plot.marked = position
            self.plot.update()

    def _query_position(self) -> int | None:
        return shown_position(self._viewers[0]) if self._viewers is not None else None

    def _clear_layers(self) -> None:
        for layer in self.layers:
            layer.remove()
        self.layers = []

    def clear(self) -> None:
        self.follow_timer.stop()
        self._request += 1
        self._clear_layers()
        self._viewers = None
        self.explanation = None
        self.plot.clear()
        self.status.setText("")
        self._set_controls(False)

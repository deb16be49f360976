"""Results grid: real search results, filter controls -> engine SearchFilters, clicks -> resultActivated."""

from __future__ import annotations

from pathlib import Path

from engine.library import Library
from engine.search import search_by_case
from app.results_view import ResultsView
from tests.app.conftest import save_png


def _results(library_dir: Path, k: int = 8):  # noqa: ANN202
    with Library.open(library_dir) as library:
        query = next(r for r in library.catalog.list_cases() if r.modality == "MR")
        return query, search_by_case(library, query.id, k=k)


def test_grid_shows_results_with_score_and_modality(qtbot, app_library: Path, output_dir: Path) -> None:
    query, results = _results(app_library)
    view = ResultsView()
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    view.set_query(f"Case {query.id}: {query.description}", query.thumbnail)
    view.set_results(results, query_case_id=query.id)
    assert view.grid.count() == len(results) == 8
    first = view.grid.item(0)
    assert first.text().startswith(f"#1 · match {results[0].match:.0f} · {results[0].modality}")
    assert f"cosine {results[0].score:.4f}" in first.toolTip()  # the raw cosine stays available
    assert view.this_case_label.isHidden()  # search by case: the query is not a library copy to point out
    assert not first.icon().isNull()
    assert view.results() == results
    assert view.status_label.text() == "8 results"
    save_png(output_dir, "results_view_unit.png", _grab(view))
    with qtbot.waitSignal(view.resultActivated) as blocker:
        view.grid.itemClicked.emit(view.grid.item(2))
    assert blocker.args[0] is results[2]


def test_controls_map_to_search_filters(qtbot) -> None:
    view = ResultsView()
    qtbot.addWidget(view)
    view.set_modalities(["XR", "CT", "US"])
    filters = view.filters(exclude_case_ids=[5])
    assert filters.modalities is None and not filters.same_modality and not filters.cross_modal
    assert tuple(filters.exclude_case_ids) == (5,)
    with qtbot.waitSignal(view.filtersChanged):
        view.modality_boxes["US"].setChecked(False)
    assert sorted(view.filters().modalities) == ["CT", "XR"]
    with qtbot.waitSignal(view.filtersChanged):
        view.set_scope("cross")
    assert view.filters().cross_modal and not view.filters().same_modality
    with qtbot.waitSignal(view.filtersChanged):
        view.k_box.setValue(25)
    assert view.k == 25
    view.set_results([])
    assert "No results" in view.status_label.text()
    view.set_results([], empty_library=True)
    assert "The library is empty" in view.status_label.text()


def _grab(widget):  # noqa: ANN001, ANN202
    from app.viewers.canvas import grab_widget

    return grab_widget(widget)

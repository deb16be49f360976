"""One export folder: de-identified copies of cases (optional) + the report of them, + ``export.json``.

Shared by ``m3ret export`` and the app's export actions so both write the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.catalog import CaseRecord
from engine.export.deidentify import ExportedCase, export_cases
from engine.export.report import Report, ReportRow, write_report
from engine.io.case import Case
from engine.labels import labels_of
from engine.library import Library
from engine.thumbnails import make_thumbnail


def export_bundle(
    library: Library, case_ids: Sequence[int], out_dir: Path, copies: bool = True, keep_identifiers: bool = False,
    query: Case | None = None, scores: Mapping[int, tuple[int, float]] | None = None,
) -> dict[str, object]:
    """Export ``case_ids`` (in that order) into ``out_dir``: copies when ``copies``, and the report (with the
    query and each case's (rank, score) when given). ``KeyError`` for an unknown case id, ``ExportError`` for a
    case whose files cannot be exported. Returns what ``export.json`` holds."""
    ids = list(dict.fromkeys(int(i) for i in case_ids))
    records = library.catalog.get_cases(ids)
    unknown = [i for i in ids if i not in records]
    if unknown:
        raise KeyError(f"no case with id {unknown[0]}")
    ordered = [records[i] for i in ids]
    deidentified = not keep_identifiers
    exported: list[ExportedCase] = export_cases(ordered, out_dir, keep_identifiers) if copies else []
    folders = {e.case_id: e.folder for e in exported}
    labels = labels_of(library.catalog, ids)
    rows = [_row(r, labels.get(r.id, {}), (scores or {}).get(r.id), folders.get(r.id), deidentified)
            for r in ordered]
    query_row = None
    if query is not None:
        query_row = ReportRow(rank=None, score=None, case_id=-1, kind=query.kind, modality=query.modality,
                              thumbnail=make_thumbnail(query), path=None if deidentified else str(query.path))
    report = Report(title="Similar cases" if query is not None else "Exported cases", model_id=library.model_id,
                    rows=rows, query=query_row, deidentified=deidentified)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = write_report(report, out_dir)
    doc: dict[str, object] = {
        "out": str(out_dir), "deidentified": deidentified, "cases": [e.to_json() for e in exported],
        "report": [p.name for p in written], "labels_summary": report.labels_summary(),
    }
    (out_dir / "export.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return doc


def _row(record: CaseRecord, labels: dict[str, str], rank_score: tuple[int, float] | None, folder: str | None,
         deidentified: bool) -> ReportRow:
    rank, score = rank_score if rank_score else (None, None)
    return ReportRow(rank=rank, score=score, case_id=record.id, kind=record.kind, modality=record.modality,
                     labels=labels, thumbnail=record.thumbnail, export_folder=folder,
                     path=None if deidentified else record.path,
                     description=None if deidentified else record.description,
                     study_date=None if deidentified else record.study_date)


__all__ = ["export_bundle"]

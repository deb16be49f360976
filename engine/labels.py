"""The user's own labels and tags on a library's cases: store, import from CSV, summarise search results.

Each case holds at most one value per key. The key ``label`` is *the* label (what ``m3ret evaluate`` scores by
default and what result panels summarise); every other key is a free key/value tag (``site=A``, ``split=test``).
They live in the catalog's ``case_labels`` table, are deleted with their case and survive re-indexing.

CSV import (``m3ret labels import FILE.csv``): a header row with ``path`` (a file or folder; relative paths are
resolved against the CSV's folder) or ``case_id``, and ``label``; every other non-empty column becomes a tag.
A path names every case with a source file at or under it. Rows whose path or id matches no case are reported,
not fatal. These are the library's own labels, shown as decision support, never as a diagnosis.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select

from engine.catalog import Catalog
from engine.catalog_schema import CaseLabelRow, CaseRow

log = logging.getLogger(__name__)

LABEL_KEY = "label"
PATH_COLUMN = "path"
ID_COLUMNS = ("case_id", "case")
_SQL_CHUNK = 500


class LabelsError(Exception):
    """A labels file cannot be used (message names the file and the reason)."""


@dataclass
class ImportReport:
    """What ``import_labels_csv`` did: rows read, cases labelled, and the rows that matched nothing."""

    rows: int = 0
    cases_labelled: int = 0
    unknown: list[str] = field(default_factory=list)  # "line N: <path or id>"

    def to_json(self) -> dict[str, object]:
        return {"rows": self.rows, "cases_labelled": self.cases_labelled, "unknown": self.unknown}


def set_labels(catalog: Catalog, case_id: int, values: Mapping[str, str | None]) -> None:
    """Set (or, with ``None`` / empty value, delete) keys of one case."""
    set_many_labels(catalog, {case_id: values})


def set_many_labels(catalog: Catalog, values_by_case: Mapping[int, Mapping[str, str | None]]) -> None:
    """Set or delete keys of many cases in one transaction (``KeyError`` for an unknown case id)."""
    ids = sorted(int(i) for i in values_by_case)
    with catalog.session() as session:
        known: set[int] = set()
        for start in range(0, len(ids), _SQL_CHUNK):
            chunk = ids[start : start + _SQL_CHUNK]
            known.update(session.scalars(select(CaseRow.id).where(CaseRow.id.in_(chunk))).all())
        missing = [i for i in ids if i not in known]
        if missing:
            raise KeyError(f"no case with id {missing[0]}")
        for case_id, values in values_by_case.items():
            for key, value in values.items():
                key = key.strip()
                if not key:
                    continue
                session.execute(delete(CaseLabelRow).where(CaseLabelRow.case_id == int(case_id),
                                                           CaseLabelRow.key == key))
                if value is not None and str(value).strip():
                    session.add(CaseLabelRow(case_id=int(case_id), key=key, value=str(value).strip()))


def labels_of(catalog: Catalog, case_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """``{case_id: {key: value}}`` for the given cases (cases without labels are left out)."""
    ids = sorted(set(int(i) for i in case_ids))
    out: dict[int, dict[str, str]] = {}
    with catalog.session() as session:
        for start in range(0, len(ids), _SQL_CHUNK):
            query = select(CaseLabelRow.case_id, CaseLabelRow.key, CaseLabelRow.value).where(
                CaseLabelRow.case_id.in_(ids[start : start + _SQL_CHUNK]))
            for case_id, key, value in session.execute(query):
                out.setdefault(case_id, {})[key] = value
    return out


def all_labels(catalog: Catalog, key: str = LABEL_KEY) -> dict[int, str]:
    """``{case_id: value}`` of every case that has ``key``."""
    with catalog.session() as session:
        rows = session.execute(select(CaseLabelRow.case_id, CaseLabelRow.value).where(CaseLabelRow.key == key))
        return {int(case_id): value for case_id, value in rows}


def label_keys(catalog: Catalog) -> list[str]:
    """Every key in use, ``label`` first."""
    with catalog.session() as session:
        keys = set(session.scalars(select(CaseLabelRow.key).distinct()).all())
    return sorted(keys, key=lambda k: (k != LABEL_KEY, k))


def label_values(catalog: Catalog, key: str = LABEL_KEY) -> list[str]:
    """The distinct values of one key, sorted."""
    with catalog.session() as session:
        return sorted(session.scalars(select(CaseLabelRow.value).where(CaseLabelRow.key == key).distinct()).all())


def case_ids_with(catalog: Catalog, value: str, key: str = LABEL_KEY) -> set[int]:
    """Cases whose ``key`` equals ``value``."""
    with catalog.session() as session:
        query = select(CaseLabelRow.case_id).where(CaseLabelRow.key == key, CaseLabelRow.value == value)
        return set(session.scalars(query).all())


def summarize(labels: Sequence[str | None]) -> str:
    """One line about the labels of the top-k results: ``"7 of 10 similar cases: pneumonia; 2: normal"``.

    Unlabelled results count in the total only; empty string when none is labelled."""
    counts = Counter(label for label in labels if label)
    if not counts:
        return ""
    (top, n_top), *rest = counts.most_common()
    text = f"{n_top} of {len(labels)} similar cases: {top}"
    return "; ".join([text] + [f"{n}: {value}" for value, n in rest])


def import_labels_csv(catalog: Catalog, csv_path: Path) -> ImportReport:
    """Read a labels CSV (module docstring) and store its labels and tags; unknown rows are reported."""
    csv_path = Path(csv_path)
    rows = _read_rows(csv_path)
    report = ImportReport(rows=len(rows))
    base = csv_path.resolve().parent
    known_ids = set(catalog.filter_case_ids().tolist())
    updates: dict[int, dict[str, str | None]] = {}
    for line, row in rows:
        ids, what = _cases_of_row(catalog, row, base, known_ids)
        if not ids:
            report.unknown.append(f"line {line}: {what}")
            continue
        values = {k: v for k, v in row.items() if k not in (PATH_COLUMN, *ID_COLUMNS) and v}
        for case_id in ids:
            updates.setdefault(case_id, {}).update(values)
    set_many_labels(catalog, updates)
    report.cases_labelled = len(updates)
    log.info("%s: %d rows, %d cases labelled, %d unknown", csv_path, report.rows, report.cases_labelled,
             len(report.unknown))
    return report


def _read_rows(csv_path: Path) -> list[tuple[int, dict[str, str]]]:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            if PATH_COLUMN not in header and not any(c in header for c in ID_COLUMNS):
                raise LabelsError(f"{csv_path}: needs a 'path' or 'case_id' column (found {', '.join(header)})")
            if LABEL_KEY not in header:
                raise LabelsError(f"{csv_path}: needs a 'label' column (found {', '.join(header)})")
            rows = []
            for row in reader:
                clean = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
                rows.append((reader.line_num, clean))
            return rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LabelsError(f"{csv_path}: cannot read labels ({exc})") from exc


def _cases_of_row(catalog: Catalog, row: dict[str, str], base: Path, known_ids: set[int]) -> tuple[set[int], str]:
    for column in ID_COLUMNS:
        text = row.get(column, "")
        if text:
            if text.isdigit() and int(text) in known_ids:
                return {int(text)}, text
            return set(), f"case id {text}"
    text = row.get(PATH_COLUMN, "")
    if not text:
        return set(), "no path or case id"
    path = Path(text).expanduser()
    path = path if path.is_absolute() else base / path
    ids = catalog.case_ids_under([path.absolute()]) or catalog.case_ids_under([path.resolve()])
    return ids, str(path)


__all__ = [
    "ImportReport", "LABEL_KEY", "LabelsError", "all_labels", "case_ids_with", "import_labels_csv", "label_keys",
    "label_values", "labels_of", "set_labels", "set_many_labels", "summarize",
]

"""A query and its results as a report: one self-contained HTML page (thumbnails inline as base64 PNG), and a CSV
and a JSON of the same rows (``m3ret export --query``).

Rows: rank, score, case id, kind, modality, the library's own labels and tags, and (only with
``keep_identifiers``) the source path, description and study date: by default the report names no file, patient,
description or date of a case, since paths and descriptions often carry patient names. The report's header gives
the model id and the date the report was made. Labels are the library's own, shown as decision support, not a
diagnosis. Thumbnails are pixels: text burned into an image shows in its thumbnail too.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.labels import LABEL_KEY, summarize

REPORT_FILES = ("report.html", "report.csv", "report.json")


@dataclass
class ReportRow:
    """One case of the report."""

    rank: int | None
    score: float | None
    case_id: int
    kind: str
    modality: str
    labels: dict[str, str] = field(default_factory=dict)
    thumbnail: bytes | None = None  # PNG
    export_folder: str | None = None  # where its de-identified copy is, when cases were exported
    path: str | None = None  # keep_identifiers only
    description: str | None = None  # keep_identifiers only
    study_date: str | None = None  # keep_identifiers only

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"rank": self.rank, "score": self.score, "case_id": self.case_id, "kind": self.kind,
                                  "modality": self.modality, "label": self.labels.get(LABEL_KEY),
                                  "tags": {k: v for k, v in self.labels.items() if k != LABEL_KEY}}
        if self.export_folder:
            out["export_folder"] = self.export_folder
        if self.path is not None:
            out.update(path=self.path, description=self.description, study_date=self.study_date)
        return out


@dataclass
class Report:
    """A report: what was asked (query), by which model, when, and the rows."""

    title: str
    model_id: str | None
    rows: list[ReportRow]
    query: ReportRow | None = None
    created: str = field(default_factory=lambda: dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))
    deidentified: bool = True

    def to_json(self) -> dict[str, object]:
        return {"title": self.title, "model_id": self.model_id, "created": self.created,
                "deidentified": self.deidentified, "labels_summary": self.labels_summary(),
                "query": self.query.to_json() if self.query else None, "rows": [r.to_json() for r in self.rows]}

    def labels_summary(self) -> str:
        return summarize([r.labels.get(LABEL_KEY) for r in self.rows]) if self.query else ""


def write_report(report: Report, out_dir: Path) -> list[Path]:
    """Write ``report.html``, ``report.csv`` and ``report.json`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / name for name in REPORT_FILES]
    paths[0].write_text(report_html(report), encoding="utf-8")
    _write_csv(report, paths[1])
    paths[2].write_text(json.dumps(report.to_json(), indent=1), encoding="utf-8")
    return paths


def _write_csv(report: Report, path: Path) -> None:
    tag_keys = sorted({k for r in report.rows for k in r.labels if k != LABEL_KEY})
    columns = ["rank", "score", "case_id", "kind", "modality", "label", *tag_keys, "export_folder"]
    if not report.deidentified:
        columns += ["path", "description", "study_date"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in report.rows:
            values = {**row.to_json(), **{k: row.labels.get(k, "") for k in tag_keys}}
            values["score"] = "" if row.score is None else f"{row.score:.4f}"
            writer.writerow(["" if values.get(c) is None else values.get(c) for c in columns])


def _img(png: bytes | None) -> str:
    if not png:
        return '<div class="noimg">no thumbnail</div>'
    return f'<img alt="thumbnail" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _card(row: ReportRow, deidentified: bool) -> str:
    e = html.escape
    head = f"#{row.rank} · {row.score:.3f}" if row.rank is not None and row.score is not None else "query"
    lines = [f"<b>{e(head)}</b>", f"case {row.case_id} · {e(row.kind)} · {e(row.modality)}"
             if row.case_id >= 0 else f"{e(row.kind)} · {e(row.modality)}"]
    if row.labels.get(LABEL_KEY):
        lines.append(f'<span class="label">{e(row.labels[LABEL_KEY])}</span>')
    tags = ", ".join(f"{e(k)}={e(v)}" for k, v in sorted(row.labels.items()) if k != LABEL_KEY)
    if tags:
        lines.append(f'<span class="tags">{tags}</span>')
    if row.export_folder:
        lines.append(f"copy: {e(row.export_folder)}/")
    if not deidentified and row.path:
        lines.append(f'<span class="ident">{e(row.path)}</span>')
        lines.append(f'<span class="ident">{e(row.description or "")} {e(row.study_date or "")}</span>')
    return f'<div class="card">{_img(row.thumbnail)}<div>{"<br>".join(lines)}</div></div>'


def report_html(report: Report) -> str:
    """The report as one HTML page with every picture inline (no other file needed to show it)."""
    e = html.escape
    summary = report.labels_summary()
    privacy = ("De-identified: no file names, patient data, descriptions or dates of cases."
               if report.deidentified else "Contains identifiers (exported with --keep-identifiers).")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{e(report.title)}</title><style>",
        "body{font-family:sans-serif;margin:2em;color:#222} .grid{display:flex;flex-wrap:wrap;gap:12px}",
        ".card{width:170px;border:1px solid #ccc;border-radius:6px;padding:6px;font-size:12px}",
        ".card img{width:160px;height:160px;image-rendering:pixelated;background:#000}",
        ".noimg{width:160px;height:160px;background:#eee} .label{background:#def;padding:0 4px;border-radius:3px}",
        ".tags{color:#555} .ident{color:#a00} .note{color:#555;font-size:12px}",
        "</style></head><body>",
        f"<h1>{e(report.title)}</h1>",
        f"<p>Model <code>{e(report.model_id or '-')}</code> · made {e(report.created)} · {len(report.rows)} cases</p>",
        f"<p class='note'>{e(privacy)}</p>",
    ]
    if report.query is not None:
        parts += ["<h2>Query</h2>", f"<div class='grid'>{_card(report.query, report.deidentified)}</div>"]
    if summary:
        parts.append(f"<p><b>{e(summary)}</b> <span class='note'>(the library's own labels: decision support, "
                     "not a diagnosis)</span></p>")
    parts += ["<h2>Results</h2>" if report.query is not None else "<h2>Cases</h2>", "<div class='grid'>"]
    parts += [_card(row, report.deidentified) for row in report.rows]
    parts += ["</div></body></html>"]
    return "\n".join(parts)


__all__ = ["REPORT_FILES", "Report", "ReportRow", "report_html", "write_report"]

"""engine.export.report: one self-contained HTML page (thumbnails inline), CSV and JSON with the same rows;
identifiers only when asked."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path

import cv2
import numpy as np

from engine.export.report import Report, ReportRow, write_report


def _png(value: int) -> bytes:
    return cv2.imencode(".png", np.full((8, 8), value, np.uint8))[1].tobytes()


def _rows(keep: bool) -> list[ReportRow]:
    return [ReportRow(rank=i + 1, score=0.9 - 0.1 * i, case_id=10 + i, kind="image2d", modality="XR",
                      labels={"label": lab, "site": "A"} if lab else {}, thumbnail=_png(40 * i),
                      path=f"/archive/Doe^John/{i}.dcm" if keep else None, description="CHEST" if keep else None,
                      study_date="2020-01-02" if keep else None)
            for i, lab in enumerate(["pneumonia", "pneumonia", "normal", None])]


def test_report_files_hold_the_same_rows(tmp_path: Path) -> None:
    query = ReportRow(rank=None, score=None, case_id=-1, kind="image2d", modality="XR", thumbnail=_png(200))
    report = Report(title="Similar cases", model_id="model-x", rows=_rows(False), query=query)
    paths = write_report(report, tmp_path)
    assert [p.name for p in paths] == ["report.html", "report.csv", "report.json"]
    page = paths[0].read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 5 and base64.b64decode(images[1]) == _png(0)  # query + 4 results, inline
    assert "src=\"http" not in page and "model-x" in page and "2 of 4 similar cases: pneumonia; 1: normal" in page
    assert "not a diagnosis" in page and "/archive" not in page and "Doe" not in page
    rows = list(csv.DictReader(paths[1].open(encoding="utf-8")))
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"] and rows[0]["label"] == "pneumonia"
    assert rows[0]["site"] == "A" and rows[0]["score"] == "0.9000" and "path" not in rows[0]
    doc = json.loads(paths[2].read_text(encoding="utf-8"))
    assert doc["model_id"] == "model-x" and doc["deidentified"] is True and len(doc["rows"]) == 4
    assert doc["rows"][2] == {"rank": 3, "score": doc["rows"][2]["score"], "case_id": 12, "kind": "image2d",
                              "modality": "XR", "label": "normal", "tags": {"site": "A"}}


def test_identifiers_only_when_kept(tmp_path: Path) -> None:
    report = Report(title="Exported cases", model_id="m", rows=_rows(True), deidentified=False)
    paths = write_report(report, tmp_path)
    page = paths[0].read_text(encoding="utf-8")
    assert "/archive/Doe^John/0.dcm" in page and "Contains identifiers" in page
    rows = list(csv.DictReader(paths[1].open(encoding="utf-8")))
    assert rows[0]["path"] == "/archive/Doe^John/0.dcm" and rows[0]["study_date"] == "2020-01-02"
    assert "similar cases" not in page  # no query: no top-k summary

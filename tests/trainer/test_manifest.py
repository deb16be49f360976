"""trainer.manifest: CSV rows with absolute paths, split/modality filters, folder rows, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.manifest import ManifestError, ManifestRow, load_manifest, rows_from_folder, write_manifest

HEADER = "path,modality,dataset,label,split,patient,source,license\n"


def _write_csv(folder: Path, lines: list[str]) -> Path:
    csv_path = folder / "manifest.csv"
    csv_path.write_text(HEADER + "".join(line + "\n" for line in lines), encoding="utf-8")
    return csv_path


def test_paths_become_absolute_and_filters_apply(tmp_path: Path) -> None:
    csv_path = _write_csv(
        tmp_path,
        [
            "xray/a.png,xray,pneu,normal,train,p1,src,CC",
            "xray/b.png,xray,pneu,pneumonia,test,p2,src,CC",
            "mri/c.jpg,mri,brain,glioma,test,p3,src,CC",
            "ct/d.nii.gz,ct,adrenal,normal,train,p4,src,CC",
        ],
    )
    rows = load_manifest(csv_path)
    assert [r.path for r in rows] == [tmp_path / "xray/a.png", tmp_path / "xray/b.png", tmp_path / "mri/c.jpg",
                                      tmp_path / "ct/d.nii.gz"]
    assert all(r.path.is_absolute() for r in rows)
    assert rows[1] == ManifestRow(tmp_path / "xray/b.png", "xray", "pneu", "pneumonia", "test", "p2", "src", "CC")
    assert rows[1].label_key == "pneu/pneumonia"

    assert [r.patient for r in load_manifest(csv_path, splits="test")] == ["p2", "p3"]
    assert [r.patient for r in load_manifest(csv_path, splits=["train", "test"], exclude_modalities=["mri"])] == [
        "p1", "p2", "p4"]
    assert [r.patient for r in load_manifest(csv_path, include_modalities={"ct", "mri"})] == ["p3", "p4"]
    assert load_manifest(csv_path, splits="val") == []


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    rows = [ManifestRow(tmp_path / "x" / "a.png", "xray", "d", "l", "test"),
            ManifestRow(Path("/elsewhere/b.png"), "ct", "d2", "l2", "train", "p", "s", "L")]
    assert load_manifest(write_manifest(rows, tmp_path / "m.csv")) == rows


def test_bad_manifests_raise_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="manifest not found"):
        load_manifest(tmp_path / "absent.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("path,modality\nx.png,xray\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"bad\.csv: missing column\(s\) dataset, label, split"):
        load_manifest(bad)


def test_rows_from_folder_label_is_parent_name(tmp_path: Path) -> None:
    for rel in ["cats/1.png", "cats/2.png", "dogs/deep/3.png", ".hidden/4.png", "dogs/.5.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    rows = rows_from_folder(tmp_path)
    assert [(r.path.relative_to(tmp_path).as_posix(), r.label) for r in rows] == [
        ("cats/1.png", "cats"), ("cats/2.png", "cats"), ("dogs/deep/3.png", "deep")]
    assert {(r.modality, r.split, r.dataset) for r in rows} == {("unknown", "train", tmp_path.name)}
    with pytest.raises(ManifestError, match="not a folder"):
        rows_from_folder(tmp_path / "cats" / "1.png")


def test_shared_manifest_loads(shared_data: Path) -> None:
    rows = load_manifest(shared_data / "manifest.csv", splits="test")
    assert rows and all(r.split == "test" and r.path.exists() for r in rows)
    assert {"xray", "ct", "mri", "ultrasound"} <= {r.modality for r in rows}
    train = load_manifest(shared_data / "manifest.csv", splits="train", exclude_modalities=("mri",))
    assert train and "mri" not in {r.modality for r in train}

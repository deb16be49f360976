"""pacs.ini: defaults, a round trip, node look-up by name or AE@HOST:PORT, errors naming the file/node."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.pacs import PacsError
from engine.pacs.nodes import Node, PacsSettings, split_ae_titles


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    settings = PacsSettings.load(tmp_path / "none.ini")
    assert (settings.ae_title, settings.port, settings.allow, settings.nodes) == ("M3RET", 11112, [], {})


def test_round_trip(tmp_path: Path) -> None:
    settings = PacsSettings(ae_title="WS1", port=4000, allow=["PACS", "CT1"], settle_seconds=2.5,
                            library=tmp_path / "lib")
    settings.nodes["main"] = Node("main", "PACS", "10.0.0.5", 104, timeout=12)
    path = settings.save(tmp_path / "pacs.ini")
    again = PacsSettings.load(path)
    assert (again.ae_title, again.port, again.allow, again.settle_seconds, again.library) == \
        ("WS1", 4000, ["PACS", "CT1"], 2.5, tmp_path / "lib")
    assert again.nodes == {"main": Node("main", "PACS", "10.0.0.5", 104, timeout=12.0)}
    assert again.node("main").host == "10.0.0.5"


def test_node_from_spec_and_unknown_name(tmp_path: Path) -> None:
    settings = PacsSettings.load(tmp_path / "pacs.ini")
    assert settings.node("ORTHANC@127.0.0.1:4242") == Node("ORTHANC", "ORTHANC", "127.0.0.1", 4242)
    with pytest.raises(PacsError, match="unknown node 'nowhere'"):
        settings.node("nowhere")
    with pytest.raises(PacsError, match="port 70000"):
        settings.node("A@h:70000")


def test_bad_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pacs.ini"
    path.write_text("[listener]\nport = eleven\n")
    with pytest.raises(PacsError, match="pacs.ini.*'eleven' is not a number"):
        PacsSettings.load(path)
    path.write_text("[node x]\nae_title = THIS-TITLE-IS-FAR-TOO-LONG\n")
    with pytest.raises(PacsError, match="invalid AE title"):
        PacsSettings.load(path)


def test_split_ae_titles() -> None:
    assert split_ae_titles("A, B  C,") == ["A", "B", "C"]

"""pytest fixtures around ``orthanc_server``: import them into a test module or a conftest."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.pacs.orthanc_server import Orthanc, free_port, orthanc_binary

OUR_AE = "M3RET"
CT_SERIES = "ct/adrenalmnist3d/hyperplasia/adrenal_train_0154"  # 64 CT slices (real DICOM files, shared data)


def require_networking() -> None:
    """Skip with the reason when Orthanc or pynetdicom is missing."""
    pytest.importorskip("pynetdicom", reason="pynetdicom absent: pip install 'm3ret[pacs]'")
    if orthanc_binary() is None:
        pytest.skip("Orthanc absent: apt-get install orthanc (.ci/run installs it)")


@pytest.fixture(scope="module")
def listener_port() -> int:
    """The port our listener uses in this module (registered in Orthanc as modality ``m3ret``)."""
    return free_port()


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory, listener_port: int) -> Iterator[Orthanc]:
    """A real Orthanc on free 127.0.0.1 ports knowing ``M3RET@127.0.0.1:listener_port`` as modality ``m3ret``."""
    require_networking()
    server = Orthanc(tmp_path_factory.mktemp("orthanc"), {"m3ret": (OUR_AE, listener_port)})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ct_series(shared_data: Path) -> list[Path]:
    """The 64 files of a real CT series in the shared data."""
    folder = shared_data / CT_SERIES
    files = sorted(folder.glob("*.dcm"))
    if not files:
        pytest.skip(f"{folder}: CT series absent from the shared data")
    return files


def copy_files(files: list[Path], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(f, dest / f.name)) for f in files]

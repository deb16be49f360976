"""A real Orthanc server for tests and benchmarks: started on free 127.0.0.1 ports with a generated configuration
(its own storage folder, DICOM AE ``ORTHANC``, our AE registered as a modality, REST without remote access, a
generated password), stopped (and its process reaped) on exit. Talks REST with the standard library only."""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ORTHANC_AE = "ORTHANC"
START_TIMEOUT_S = 30.0


def orthanc_binary() -> str | None:
    """The ``Orthanc`` executable (Debian package ``orthanc``), or None."""
    return shutil.which("Orthanc") or (str(Path("/usr/sbin/Orthanc")) if Path("/usr/sbin/Orthanc").is_file() else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Orthanc:
    """One Orthanc process; ``modalities`` maps a name to (AE title, port) of SCPs on 127.0.0.1 it may reach."""

    def __init__(self, workdir: Path, modalities: dict[str, tuple[str, int]]) -> None:
        self.workdir = Path(workdir)
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.modalities = modalities
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Orthanc":
        binary = orthanc_binary()
        if binary is None:
            raise RuntimeError("Orthanc is not installed (apt-get install orthanc)")
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "m3ret-test", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
            "Plugins": [], "HttpPort": self.http_port, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True, "RegisteredUsers": {"m3ret": self.password},
            "HttpServerEnabled": True, "DicomServerEnabled": True, "DicomAet": ORTHANC_AE,
            "DicomPort": self.dicom_port, "DicomCheckCalledAet": False, "DicomCheckModalityHost": False,
            "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True, "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True, "DicomAlwaysAllowMove": True, "UnknownSopClassAccepted": False,
            "DicomModalities": {name: [ae, "127.0.0.1", port] for name, (ae, port) in self.modalities.items()},
            "SaveJobs": False, "StableAge": 1, "ConcurrentJobs": 1, "DicomScuTimeout": 10,
            "OrthancExplorerEnabled": False, "WebDavEnabled": False, "HttpCompressionEnabled": False,
        }
        config_path = self.workdir / "orthanc.json"
        config_path.write_text(json.dumps(config, indent=1))
        log = (self.workdir / "orthanc.log").open("wb")
        self.process = subprocess.Popen([binary, str(config_path)], stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.workdir, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited ({self.process.returncode}): "
                                   f"{(self.workdir / 'orthanc.log').read_text()[-2000:]}")
            try:
                self.get("/system")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("Orthanc did not answer within 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "Orthanc":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- REST -----------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json",
                timeout: float = 120) -> Any:
        token = base64.b64encode(f"m3ret:{self.password}".encode()).decode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=body, method=method,
                                     headers={"Authorization": f"Basic {token}", "Content-Type": content_type})
        with urllib.request.urlopen(req, timeout=timeout) as answer:
            data = answer.read()
        return json.loads(data) if data[:1] in (b"{", b"[") else data

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post_json(self, path: str, doc: Any, timeout: float = 120) -> Any:
        return self.request("POST", path, json.dumps(doc).encode(), timeout=timeout)

    def upload(self, files: list[Path]) -> list[dict[str, Any]]:
        """POST each file to /instances; Orthanc's answers (ID, ParentStudy, Status...)."""
        return [self.request("POST", "/instances", Path(f).read_bytes(), "application/dicom") for f in files]

    def upload_bytes(self, data: bytes) -> dict[str, Any]:
        return self.request("POST", "/instances", data, "application/dicom")

    def store_to(self, modality: str, resources: list[str], timeout: float = 300) -> Any:
        """C-STORE ``resources`` (Orthanc ids) to a configured modality (synchronous job)."""
        return self.post_json(f"/modalities/{modality}/store",
                              {"Resources": resources, "Synchronous": True}, timeout=timeout)


def write_series_from_slice(template: Path, n_slices: int, out_dir: Path, patient_id: str = "BENCH1") -> list[Path]:
    """``n_slices`` CT slices made from one real slice: new study/series/SOP UIDs, positions 1 mm apart, the
    template's pixels shifted by the slice index (so no two slices are equal)."""
    import numpy as np
    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(template)
    pixels = ds.pixel_array  # H W
    study, series = generate_uid(), generate_uid()
    origin = [float(v) for v in ds.get("ImagePositionPatient", [0.0, 0.0, 0.0])]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_slices):
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientID = patient_id
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + i * 1.0]
        ds.SliceLocation = origin[2] + i * 1.0
        ds.PixelData = np.roll(pixels, i, axis=1).astype(pixels.dtype).tobytes()
        path = out_dir / f"slice{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
